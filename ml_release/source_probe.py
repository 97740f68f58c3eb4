"""Reading a source far enough to prove it usable, before anything runs (`ml-release validate`).

`probe_source` opens a source as the data assets do and checks what `run` would find, with the
messages `run` gives: the columns the feature code, the model and the listed gates need (with
their types), at least one row, every needed column read to its last page (a truncated Parquet
file whose footer is intact fails here, not in the middle of a run), the label's values for the
task, the row key the comparison pairs rows on (unique), and for the serving log every logged
request against the request contract.
"""

import duckdb

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.feature_code import load_feature_code
from ml_release.featurize import check_raw_columns
from ml_release.identifiers import quote
from ml_release.request_fields import SCAN_BATCH, request_check, where_logged
from ml_release.source_needs import check_role_columns, role_needs
from ml_release.sources import (
    check_source,
    check_unique,
    no_rows_error,
    open_relation,
    row_key,
    unreadable_error,
)
from ml_release.spec import ReleaseSpec

EXAMPLES = 3
# Rows whose (non-null) label a task cannot use, as SQL over the label cast to a number.
BAD_LABEL = {
    "binary_classification": ("v NOT IN (0, 1)", "0 or 1"),
    "regression": ("NOT isfinite(v)", "a finite number"),
    "ranking": ("NOT isfinite(v) OR v < 0", "a graded relevance >= 0"),
}


def probe_source(spec: ReleaseSpec, dataset: str) -> int:
    """Prove `dataset`'s source usable by this spec; its row count, or DataInputError."""
    source = spec.source_for(dataset)
    check_source(source, dataset, spec.model.task)
    connection = duckdb.connect()
    try:
        relation, params = open_relation(connection, source)
        described = connection.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
        columns = {row[0]: row[1] for row in described}
        where = source.describe()
        # Rows first: `run` copies the source before any column is checked.
        if connection.execute(f"SELECT count(*) FROM {relation}", params).fetchall()[0][0] == 0:
            raise no_rows_error(dataset, source)
        raw: dict[str, str] = {}
        if dataset != keys.SERVING_LOG:  # the serving log's raw columns are request fields
            raw = load_feature_code(spec.features.code).required_columns
            check_raw_columns(columns, raw, dataset, where)
        needs = role_needs(spec)[dataset]
        check_role_columns(columns, needs, dataset, where, spec.model.task)
        read = list(dict.fromkeys([*raw, *(need.column for need in needs)]))
        counts = connection.execute(
            f"SELECT count(*), {', '.join(f'count({quote(c)})' for c in read)} FROM {relation}",
            params,
        ).fetchall()[0]
        if spec.data.label in read:  # a ranking's serving log has no label to read
            labelled = counts[1 + read.index(spec.data.label)]
            _check_labels(connection, (relation, params), spec, dataset, (counts[0], labelled))
        if dataset == keys.SERVING_LOG:
            _check_requests(connection, (relation, params), spec)
        key = row_key(spec, dataset)
        if key is not None and key in columns:  # the paired comparison joins on it
            connection.execute(
                f"CREATE TEMP TABLE probe_keys AS SELECT {quote(key)} FROM {relation}", params
            )
            check_unique(connection, "probe_keys", key, source, dataset)
    except duckdb.Error as exc:
        raise unreadable_error(dataset, source, exc) from None
    finally:
        connection.close()
    return int(counts[0])


def _check_labels(connection, relation, spec: ReleaseSpec, dataset: str, counts) -> None:
    rows, labelled = counts
    label, where = spec.data.label, spec.source_for(dataset).describe()
    if dataset != keys.SERVING_LOG and labelled < rows:  # labels arrive late only when serving
        kind = "training" if dataset == keys.TRAINING_SNAPSHOT else "evaluation"
        raise DataInputError(
            f"{dataset}: {rows - labelled} row(s) of {where} have no label {label!r}. Fix: drop "
            f"unlabelled rows from the {kind} export."
        )
    if dataset == keys.SERVING_LOG and labelled == 0:
        on_serving = [g.id for g in spec.gates if getattr(g.params, "eval_set", None) == "serving"]
        if on_serving:
            raise DataInputError(
                f"gate {on_serving[0]}: evaluation set 'serving' has no labelled rows: "
                f"{label!r} is null in all {rows:,} requests of {where}. Fix: judge "
                f"{', '.join(on_serving)} on the holdout until labels arrive, or add them"
            )
    rule = BAD_LABEL.get(spec.model.task)
    if rule is None:
        return
    condition, expected = rule
    text, params = relation
    bad = connection.execute(
        f"SELECT count(*), list(DISTINCT l) FILTER (WHERE l IS NOT NULL)[:{EXAMPLES}] FROM "
        f"(SELECT {quote(label)} AS l, CAST({quote(label)} AS DOUBLE) AS v FROM {text}) "
        f"WHERE v IS NOT NULL AND ({condition})",
        params,
    ).fetchall()[0]
    if bad[0]:
        raise DataInputError(
            f"{dataset}: label {label!r} must be {expected} for model.task {spec.model.task}; "
            f"{bad[0]:,} row(s) of {where} are not, e.g. {', '.join(map(str, bad[1]))}. Fix "
            "the export, or correct model.task"
        )


def _check_requests(connection, relation, spec: ReleaseSpec) -> None:
    text, params = relation
    log = spec.data.serving_log
    check = request_check(spec, load_feature_code(spec.features.code).required_columns)
    reader = connection.sql(
        f"SELECT {quote(log.request_id_column)}, {quote(log.request_column)} FROM {text}",
        params=params or None,
    ).to_arrow_reader(SCAN_BATCH)
    for batch in reader:
        check.add(batch.column(0).to_pylist(), batch.column(1).to_pylist())
    check.raise_if_any(where_logged(spec))
