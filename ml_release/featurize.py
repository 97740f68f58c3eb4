"""Applying the shared feature code to a warehouse dataset, in bounded-memory batches.

The feature module named by `features.code` in the spec provides `REQUIRED_COLUMNS` (raw column
→ "numeric" or "categorical") and `compute_features(raw) -> DataFrame`. Before any row is
computed, the raw table's columns are checked against `REQUIRED_COLUMNS`: a missing column (with
a rename hint) or a numeric column stored as text is a `DataInputError` naming the dataset. The
serving log's raw columns are fields of its logged JSON requests, checked the same way
(`ml_release.request_fields`).
"""

import re
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.feature_code import FeatureCode, load_feature_code
from ml_release.home import temp_file
from ml_release.identifiers import quote
from ml_release.request_fields import request_check, requests_frame, where_logged
from ml_release.sources import SOURCES_TABLE, ensure_sources_table
from ml_release.spec import ReleaseSpec, close_matches
from ml_release.warehouse import Warehouse

BATCH_ROWS = 100_000
# Which loaded source and feature code each feature table was computed from, written with it.
LINEAGE_TABLE = "_feature_lineage"
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


def _write_batches(batches, code: FeatureCode, spec: ReleaseSpec, raw_of, out: Path) -> None:
    writer = None
    try:
        for batch in batches:
            frame = batch.to_pandas()
            raw = raw_of(frame)
            if raw is None:  # damaged input: the rest is only checked, then reported
                continue
            features = code.compute(raw)
            if len(features) != len(raw):
                raise DataInputError(
                    f"compute_features returned {len(features)} rows for {len(raw)}: it must "
                    "return exactly one row per input row"
                )
            keep = _passthrough(spec, list(frame.columns), set(features.columns))
            table = pa.Table.from_pandas(
                pd.concat(
                    [frame[keep].reset_index(drop=True), features.reset_index(drop=True)], axis=1
                ),
                preserve_index=False,
            )
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def build_features(warehouse: Warehouse, spec: ReleaseSpec, feature_table: str) -> int:
    """Compute `feature_table` from its raw dataset with the shared feature code."""
    code = load_feature_code(spec.features.code)
    raw_table = keys.FEATURE_SOURCES[feature_table]
    columns = warehouse.columns(raw_table)
    required = code.required_columns
    source = spec.source_for(raw_table).describe()
    if raw_table == keys.SERVING_LOG:
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

    staging = temp_file(feature_table, "parquet", warehouse.path.parent)
    try:
        with warehouse.connect() as connection:
            reader = connection.sql(
                f"SELECT {', '.join(quote(c) for c in select)} FROM {quote(raw_table)}"
            ).to_arrow_reader(BATCH_ROWS)
            _write_batches(reader, code, spec, raw_of, staging)
        finish()
        return warehouse.replace_from_parquet(
            feature_table,
            staging,
            also=lambda c: _record_lineage(c, feature_table, raw_table, code.version),
        )
    finally:
        staging.unlink(missing_ok=True)


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
