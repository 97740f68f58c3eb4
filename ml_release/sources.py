"""Reading a dataset from its source into the warehouse, with errors that name the file.

The file is inspected before DuckDB reads it: missing, zero bytes, a CSV named `.parquet`, a
truncated Parquet file and a header-only file each raise `DataInputError` saying what was
expected, what was found, and what to do. Nothing partial is left in the warehouse.
"""

import hashlib
from pathlib import Path

import duckdb

from ml_release.dbfile import one
from ml_release.errors import DataInputError
from ml_release.identifiers import quote
from ml_release.spec import SourceSpec
from ml_release.warehouse import Warehouse

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


def load_source(
    warehouse: Warehouse, source: SourceSpec, table: str, task: str = "binary_classification"
) -> int:
    """Copy `source` into warehouse `table` atomically; returns its row count (never 0)."""
    check_source(source, table, task)
    if source.duckdb is not None:
        relation, params = f"src.{quote(source.table or '')}", []
    else:
        relation, params = _reader(source)
    try:
        with warehouse.transaction() as connection:
            if source.duckdb is not None:
                connection.execute("ATTACH ? AS src (READ_ONLY)", [source.duckdb])
            connection.execute(
                f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT * FROM {relation}", params
            )
            rows = int(one(connection, f"SELECT count(*) FROM {quote(table)}")[0])
            if rows == 0:
                raise DataInputError(
                    f"{table}: {source.describe()} has columns but no rows. Fix: check the "
                    "export that produced it; a release cannot be judged on an empty dataset."
                )
            if source.duckdb is not None:
                connection.execute("DETACH src")
    except duckdb.Error as exc:
        raise DataInputError(
            f"{table}: {source.describe()} cannot be read as {source.file_format or 'a table'}: "
            f"{str(exc).splitlines()[0]}. Fix: re-export the file or correct `data` in the spec."
        ) from None
    return rows


def check_source(source: SourceSpec, dataset: str, task: str = "binary_classification") -> None:
    """Fail fast, before anything runs, when a source file is missing or unreadable.

    `task` is the spec's model.task: the hint for a missing file names its demo data.
    """
    if source.duckdb is not None:
        _check_file(Path(source.duckdb), "duckdb", dataset, task)
    else:
        _check_file(Path(source.path or ""), source.file_format, dataset, task)


def fingerprint(source: SourceSpec) -> str:
    """sha256 of the source file's bytes (of the database file for a DuckDB source)."""
    digest = hashlib.sha256()
    with Path(source.duckdb or source.path or "").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
