"""Applying the shared feature code to a warehouse dataset, in bounded-memory batches.

The feature module named by `features.code` in the spec provides `REQUIRED_COLUMNS` (raw column
→ "numeric" or "categorical") and `compute_features(raw) -> DataFrame`. Before any row is
computed, the raw table's columns are checked against `REQUIRED_COLUMNS`: a missing column (with
a rename hint) or a numeric column stored as text is a `DataInputError` naming the dataset. The
serving log's raw columns are fields of its logged JSON requests, checked the same way
(`ml_release.request_fields`).

The serving log's requests are parsed once: the fields the feature code read go into
`REQUESTS_TABLE` beside the features, in the same transaction, so the evaluation rows read
them back instead of parsing every request again (`ml_release.scoring`). Fields that would
not read back exactly (one mixing text and numbers, one with no value in the first batch, one
whose type changes between batches) leave no table, and the evaluation rows parse the
requests again. Batches go into DuckDB as Arrow, inside one transaction: a feature table is
replaced whole or not at all.
"""

import re

import duckdb
import pandas as pd
import pyarrow as pa

from ml_release import keys
from ml_release.dbfile import one
from ml_release.errors import DataInputError
from ml_release.feature_code import FeatureCode, load_feature_code
from ml_release.identifiers import quote
from ml_release.request_fields import request_check, requests_frame, where_logged
from ml_release.sources import SOURCES_TABLE, ensure_sources_table
from ml_release.spec import ReleaseSpec, close_matches
from ml_release.warehouse import Warehouse

BATCH_ROWS = 100_000
# Which loaded source and feature code each feature table was computed from, written with it.
LINEAGE_TABLE = "_feature_lineage"
# The serving log's parsed request fields, row for row with serving_features_recomputed.
REQUESTS_TABLE = "_serving_requests"
NUMERIC_TYPE = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|"
    r"FLOAT|DOUBLE|REAL|DECIMAL.*)$"
)


def is_numeric_type(duckdb_type: str) -> bool:
    """True for DuckDB integer, floating and decimal types."""
    return NUMERIC_TYPE.match(duckdb_type.upper()) is not None


def check_raw_columns(
    columns: dict[str, str], required: dict[str, str], dataset: str, where: str
) -> None:
    """Raise DataInputError listing every required column that is missing or mistyped."""
    problems = []
    missing = [c for c in required if c not in columns]
    extra = [c for c in columns if c not in required]
    for column in missing:
        problems.append(
            f"column {column!r} is missing.{close_matches(column, extra)}"
            f" Present: {', '.join(columns)}"
        )
    for column, kind in required.items():
        if kind == "numeric" and column in columns and not is_numeric_type(columns[column]):
            problems.append(
                f"column {column!r} must be numeric but is {columns[column]} "
                "(numbers stored as text?)"
            )
    if problems:
        raise DataInputError(
            f"{dataset} ({where}) does not have the raw columns the feature code needs:\n  - "
            + "\n  - ".join(problems)
            + "\nFix: correct the export, or update REQUIRED_COLUMNS and compute_features."
        )


def _passthrough(spec: ReleaseSpec, available: list[str], features: set[str]) -> list[str]:
    wanted = [
        spec.data.serving_log.request_id_column,
        spec.data.id_column,
        spec.data.timestamp_column,
        *spec.data.segments,
        spec.data.label,
    ]
    out: list[str] = []
    for column in wanted:
        if column in available and column not in features and column not in out:
            out.append(column)
    return out


class _BatchTable:
    """Frames written batch by batch into one warehouse table, in the caller's transaction.

    Each batch goes in as Arrow, cast to the first batch's types (one that does not fit is an
    error, as in a Parquet file). `exact`: the table holds the feature code's raw input and is
    kept only while it reads back as pandas read it: a column Arrow types as null (no value in
    the first batch), or a batch that does not fit, abandons it (`drop_unless_whole` drops it).
    """

    def __init__(self, connection, name: str, exact: bool = False) -> None:
        self.connection, self.name, self.exact = connection, name, exact
        self.schema: pa.Schema | None = None
        self.abandoned = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.abandoned:
            return
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.schema is None:
                if self.exact and any(pa.types.is_null(f.type) for f in table.schema):
                    raise pa.ArrowInvalid("a column without a value")
                sql = f"CREATE OR REPLACE TABLE {quote(self.name)} AS SELECT * FROM _batch"
                self.schema = table.schema
            else:
                table = table.cast(self.schema)
                sql = f"INSERT INTO {quote(self.name)} SELECT * FROM _batch"
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            if not self.exact:
                raise
            self.abandoned = True
            return
        self.connection.register("_batch", table)
        try:
            self.connection.execute(sql)
        finally:
            self.connection.unregister("_batch")

    def drop_unless_whole(self) -> None:
        """Leave no table of this name unless it holds every batch."""
        if self.abandoned or self.schema is None:
            self.connection.execute(f"DROP TABLE IF EXISTS {quote(self.name)}")


def _write_batches(
    batches,
    code: FeatureCode,
    spec: ReleaseSpec,
    raw_of,
    out: _BatchTable,
    raw_out: _BatchTable | None = None,
) -> None:
    for batch in batches:
        frame = batch.to_pandas()
        raw = raw_of(frame)
        if raw is None:  # damaged input: the rest is only checked, then reported
            continue
        if raw_out is not None:
            raw_out.write(raw)
        features = code.compute(raw)
        if len(features) != len(raw):
            raise DataInputError(
                f"compute_features returned {len(features)} rows for {len(raw)}: it must "
                "return exactly one row per input row"
            )
        keep = _passthrough(spec, list(frame.columns), set(features.columns))
        out.write(
            pd.concat([frame[keep].reset_index(drop=True), features.reset_index(drop=True)], axis=1)
        )


def build_features(warehouse: Warehouse, spec: ReleaseSpec, feature_table: str) -> int:
    """Compute `feature_table` from its raw dataset with the shared feature code."""
    code = load_feature_code(spec.features.code)
    raw_table = keys.FEATURE_SOURCES[feature_table]
    columns = warehouse.columns(raw_table)
    required = code.required_columns
    source = spec.source_for(raw_table).describe()
    serving = raw_table == keys.SERVING_LOG
    if serving:
        log = spec.data.serving_log
        check_raw_columns(
            columns,
            {log.request_id_column: "categorical", log.request_column: "categorical"},
            raw_table,
            source,
        )
        select = [c for c in columns if c != log.logged_features_column]
        check = request_check(spec, required)  # a renamed field must not become nulls

        def raw_of(frame: pd.DataFrame) -> pd.DataFrame | None:
            parsed = check.add(frame[log.request_id_column], frame[log.request_column])
            if check.problems():
                return None
            return requests_frame(parsed, list(required), frame.index)

        def finish() -> None:
            check.raise_if_any(where_logged(spec))
    else:
        check_raw_columns(columns, required, raw_table, source)
        select = list(columns)

        def raw_of(frame: pd.DataFrame) -> pd.DataFrame | None:
            return frame

        def finish() -> None:
            pass

    # Read in batches on one connection, written on another inside one transaction: the
    # table (and the stored requests) replaced whole, or not at all.
    with warehouse.connect() as reading, warehouse.transaction() as writing:
        reader = reading.sql(
            f"SELECT {', '.join(quote(c) for c in select)} FROM {quote(raw_table)}"
        ).to_arrow_reader(BATCH_ROWS)
        out = _BatchTable(writing, feature_table)
        raw_out = _BatchTable(writing, REQUESTS_TABLE, exact=True) if serving else None
        _write_batches(reader, code, spec, raw_of, out, raw_out)
        finish()
        if out.schema is None:
            raise DataInputError(f"{raw_table} ({source}) has no rows to compute features of")
        if raw_out is not None:
            raw_out.drop_unless_whole()  # replaced or dropped with the features: never stale
        _record_lineage(writing, feature_table, raw_table, code.version)
        return int(one(writing, f"SELECT count(*) FROM {quote(feature_table)}")[0])


def _record_lineage(connection, table: str, raw_table: str, code: str) -> None:
    """Record what `table` was computed from: its source's loaded fingerprint, the feature code."""
    ensure_sources_table(connection)
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {LINEAGE_TABLE} "
        "(feature_table VARCHAR PRIMARY KEY, source_fingerprint VARCHAR, feature_code VARCHAR)"
    )
    connection.execute(
        f"INSERT INTO {LINEAGE_TABLE} VALUES (?, (SELECT fingerprint FROM "
        f"{SOURCES_TABLE} WHERE dataset = ?), ?) ON CONFLICT (feature_table) DO UPDATE "
        "SET source_fingerprint = excluded.source_fingerprint, "
        "feature_code = excluded.feature_code",
        [table, raw_table, code],
    )


def check_current(connection, spec: ReleaseSpec, feature_table: str, code: str) -> None:
    """DataInputError unless `feature_table` came from the loaded source and feature `code`.

    A step that reads a feature table beside its raw dataset (the evaluation rows take their
    segment values from it) must not pair rows with features of other data: after a partial
    materialization, say a new holdout loaded without its features.
    """
    raw_table = keys.FEATURE_SOURCES[feature_table]
    try:  # the lineage table is written with the sources table (_record_lineage)
        row = connection.execute(
            f"SELECT l.source_fingerprint IS NOT DISTINCT FROM s.fingerprint, l.feature_code "
            f"FROM {LINEAGE_TABLE} l LEFT JOIN {SOURCES_TABLE} s ON s.dataset = ? "
            "WHERE l.feature_table = ?",
            [raw_table, feature_table],
        ).fetchone()
    except duckdb.CatalogException:
        row = None
    if row is None or not row[0] or row[1] != code:
        why = (
            "was never computed"
            if row is None
            else f"was computed from another load of {raw_table}"
            if not row[0]
            else f"was computed by another version of {spec.features.code}"
        )
        raise DataInputError(
            f"{feature_table} {why}: its rows cannot be paired with {raw_table}'s. Fix: "
            f"materialize {feature_table} again (`ml-release run` materializes everything)."
        )
