"""Reading a dataset from its source into the warehouse, with errors that name the file.

The file is inspected before DuckDB reads it: missing, zero bytes, a CSV named `.parquet`, a
truncated Parquet file and a header-only file each raise `DataInputError` saying what was
expected, what was found, and what to do. Nothing partial is left in the warehouse.
"""

import hashlib
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ml_release.dbfile import one
from ml_release.errors import DataInputError
from ml_release.faults import fault_point
from ml_release.identifiers import quote
from ml_release.spec import SourceSpec
from ml_release.warehouse import Warehouse

if TYPE_CHECKING:
    import pandas as pd

PARQUET_MAGIC = b"PAR1"


EXAMPLE_DATA = {
    "ranking": "ml-release demo-data --task ranking",
    "regression": "python -m examples.regression.data",
    "multiclass_classification": "python -m examples.multiclass.data",
}


def demo_data_command(task: str) -> str:
    """The command that writes the demo (or example) data a spec of model.task `task` reads."""
    return EXAMPLE_DATA.get(task, "ml-release demo-data")


def _check_file(path: Path, file_format: str, dataset: str, task: str) -> None:
    if not path.exists():
        raise DataInputError(
            f"{dataset}: source file not found: {path}. Fix: correct `data` in the release "
            f"spec, or create the demo data with `{demo_data_command(task)}`."
        )
    if not path.is_file():
        raise DataInputError(f"{dataset}: {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise DataInputError(
            f"{dataset}: {path} is empty (0 bytes); the writer probably failed. Re-export it."
        )
    if file_format != "parquet":
        return
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(0, size - 4))
        tail = handle.read(4)
    if head != PARQUET_MAGIC:
        looks = "CSV text" if b"," in head or head.isascii() else "not Parquet"
        raise DataInputError(
            f"{dataset}: {path} is not a Parquet file (it starts with {head!r}, {looks}). "
            "Fix: rename it to .csv or set `format: csv`, or re-export it as Parquet."
        )
    if tail != PARQUET_MAGIC or size < 12:
        raise DataInputError(
            f"{dataset}: {path} is a truncated Parquet file (no footer after {size} bytes); "
            "the writer was probably interrupted. Re-export it."
        )


def _reader(source: SourceSpec) -> tuple[str, list[object]]:
    if source.file_format == "csv":
        return "read_csv(?, header = true)", [source.path]
    return "read_parquet(?)", [source.path]


def open_relation(connection: duckdb.DuckDBPyConnection, source: SourceSpec):
    """(relation, parameters) reading `source` on `connection` (a DuckDB source is attached)."""
    if source.duckdb is not None:
        connection.execute("ATTACH ? AS src (READ_ONLY)", [source.duckdb])
        return f"src.{quote(source.table or '')}", []
    return _reader(source)


def no_rows_error(table: str, source: SourceSpec) -> DataInputError:
    """The error for a source with columns but no rows (`run` and `validate` alike)."""
    return DataInputError(
        f"{table}: {source.describe()} has columns but no rows. Fix: check the "
        "export that produced it; a release cannot be judged on an empty dataset."
    )


def unreadable_error(table: str, source: SourceSpec, exc: duckdb.Error) -> DataInputError:
    """The error for a source DuckDB cannot read (`run` and `validate` alike)."""
    return DataInputError(
        f"{table}: {source.describe()} cannot be read as {source.file_format or 'a table'}: "
        f"{str(exc).splitlines()[0]}. Fix: re-export the file or correct `data` in the spec."
    )


SOURCES_TABLE = "_loaded_sources"
_SOURCE_NAMES = itertools.count()  # names under which DuckDB sources are attached


def ensure_sources_table(connection) -> None:
    """The table of each dataset's loaded source fingerprint, created if missing."""
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} "
        "(dataset VARCHAR PRIMARY KEY, fingerprint VARCHAR, loaded_at TIMESTAMPTZ)"
    )


MAX_LISTED = 5


def row_key(spec, dataset: str) -> str | None:
    """The column that identifies a dataset's rows for the paired comparison, if any."""
    from ml_release import keys

    if dataset == keys.EVALUATION_HOLDOUT:
        return spec.data.id_column
    if dataset == keys.SERVING_LOG and spec.data.serving_log is not None:
        return spec.data.serving_log.request_id_column
    return None


def duplicate_keys(connection, table: str, column: str) -> tuple[int, list[tuple[str, int]]]:
    """How many rows share a key with another row, and the most repeated keys (in SQL).

    Counted by one GROUP BY in the database, before anything joins on the key: a join of a
    key that repeats k times returns k * k rows (all ids equal: n * n), so this is checked
    first and memory stays bounded whatever the input.
    """
    (rows,) = connection.execute(
        f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {quote(table)} "
        f"GROUP BY {quote(column)} HAVING count(*) > 1)"
    ).fetchall()[0]
    if not rows:
        return 0, []
    examples = connection.execute(
        f"SELECT CAST({quote(column)} AS VARCHAR), count(*) AS n FROM {quote(table)} "
        f"GROUP BY {quote(column)} HAVING count(*) > 1 ORDER BY n DESC, 1 LIMIT {MAX_LISTED}"
    ).fetchall()
    return int(rows), [(str(key), int(n)) for key, n in examples]


def load_source(
    warehouse: Warehouse,
    source: SourceSpec,
    table: str,
    task: str = "binary_classification",
    unique: str | None = None,
) -> int:
    """Copy `source` into warehouse `table` atomically; returns its row count (never 0).

    The source's fingerprint is recorded with the table in the same transaction
    (`loaded_fingerprint`), so every verdict can say which data it judged. With `unique`, that
    column must identify rows (the comparison pairs rows by it): duplicates are a clear error
    and nothing is loaded.
    """
    check_source(source, table, task)
    fault_point("warehouse:load", table=table)  # a step holding the warehouse pool
    digest = fingerprint(source)
    attached = ""
    if source.duckdb is not None:
        # Attached under a name of its own: the process's files share one DuckDB database
        # (`ml_release.dbfile`). The ATTACH is part of the transaction: an error rolls it back.
        attached = f"src_{next(_SOURCE_NAMES)}"
        relation, params = f"{attached}.{quote(source.table or '')}", []
    else:
        relation, params = _reader(source)
    try:
        with warehouse.transaction() as connection:
            if attached:
                connection.execute(f"ATTACH ? AS {attached} (READ_ONLY)", [source.duckdb])
            connection.execute(
                f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT * FROM {relation}", params
            )
            rows = int(one(connection, f"SELECT count(*) FROM {quote(table)}")[0])
            if rows == 0:
                raise no_rows_error(table, source)
            if attached:
                connection.execute(f"DETACH {attached}")
            if unique is not None:
                check_unique(connection, table, unique, source)
            ensure_sources_table(connection)
            connection.execute(
                f"INSERT INTO {SOURCES_TABLE} VALUES (?, ?, now()) ON CONFLICT (dataset) "
                "DO UPDATE SET fingerprint = excluded.fingerprint, loaded_at = excluded.loaded_at",
                [table, digest],
            )
    except duckdb.Error as exc:
        raise unreadable_error(table, source, exc) from None
    return rows


def check_unique(
    connection, table: str, column: str, source: SourceSpec, dataset: str | None = None
) -> None:
    """DataInputError when rows of `table` (loaded from `dataset`) share their `column`."""
    present = [r[0] for r in connection.execute(f"DESCRIBE {quote(table)}").fetchall()]
    if column not in present:
        return  # the feature and scoring steps name a missing column with their own message
    repeated, examples = duplicate_keys(connection, table, column)
    if repeated:
        shown = ", ".join(f"{key!r} ({n} rows)" for key, n in examples)
        raise DataInputError(
            f"{dataset or table}: {repeated} rows of {source.describe()} share their "
            f"{column!r} with another row, e.g. {shown}. Both models are compared row by row on "
            f"{column!r}, "
            "so it must identify one row. Fix: deduplicate the export, or name a unique "
            "column in the spec."
        )


def read_columns(source: SourceSpec, columns: list[str], dataset: str) -> "pd.DataFrame":
    """`columns` of a source as a DataFrame, read directly (not through the warehouse).

    Raises:
        DataInputError: The file is missing or unreadable, or lacks a column (named, with the
            columns it has).
    """
    check_source(source, dataset)
    connection = duckdb.connect()
    try:
        relation, params = open_relation(connection, source)
        present = [
            row[0]
            for row in connection.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
        ]
        missing = [c for c in columns if c not in present]
        if missing:
            raise DataInputError(
                f"{dataset}: {source.describe()} has no column {', '.join(map(repr, missing))}. "
                f"Present: {', '.join(present)}. Fix: export the column, or correct the spec."
            )
        selected = ", ".join(quote(c) for c in columns)
        return connection.execute(f"SELECT {selected} FROM {relation}", params).df()
    except duckdb.Error as exc:
        raise unreadable_error(dataset, source, exc) from None
    finally:
        connection.close()


def check_source(source: SourceSpec, dataset: str, task: str = "binary_classification") -> None:
    """Fail fast, before anything runs, when a source file is missing or unreadable.

    `task` is the spec's model.task: the hint for a missing file names its demo data.
    """
    if source.duckdb is not None:
        _check_file(Path(source.duckdb), "duckdb", dataset, task)
    else:
        _check_file(Path(source.path or ""), source.file_format, dataset, task)


def loaded_fingerprints(warehouse: Warehouse) -> dict[str, str]:
    """Dataset -> fingerprint of the source each warehouse table was last loaded from."""
    if not warehouse.exists(SOURCES_TABLE):
        return {}
    with warehouse.connect() as connection:
        rows = connection.execute(f"SELECT dataset, fingerprint FROM {SOURCES_TABLE}").fetchall()
    return dict(rows)


def data_version(warehouse: Warehouse, code_version: str = "") -> str | None:
    """One version for the data a release judges: the loaded sources and the feature code.

    Content-addressed, so two runs over the same files agree (a concurrent run does not make
    the other's verdicts stale); None before any dataset was loaded.
    """
    loaded = loaded_fingerprints(warehouse)
    if not loaded:
        return None
    text = json.dumps({"sources": loaded, "feature_code": code_version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(source: SourceSpec) -> str:
    """sha256 of the source file's bytes (of the database file for a DuckDB source)."""
    digest = hashlib.sha256()
    with Path(source.duckdb or source.path or "").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
