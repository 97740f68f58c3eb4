"""The embedded warehouse: one DuckDB file, short connections, bounded retry on its lock.

DuckDB lets one process at a time open a database file; a second process gets
`Could not set lock on file`. Every operation here opens a connection, does one short piece of
work in a transaction, and closes it; a locked file is retried with exponential backoff up to
`lock_timeout` seconds, then reported as `WarehouseLockedError` naming the holder.
"""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ml_release.errors import WarehouseLockedError
from ml_release.identifiers import quote

_LOCK_MESSAGE = re.compile(r"lock", re.IGNORECASE)


def one(connection: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    """The single row of a query that returns exactly one (an aggregate, a count)."""
    rows = connection.execute(sql, params or []).fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}: {sql[:120]}")
    return rows[0]


class Warehouse:
    """Access to `warehouse.duckdb` for every step of a release."""

    def __init__(self, path: Path | str, lock_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if not _LOCK_MESSAGE.search(str(exc)):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseLockedError(
                        f"{self.path} stayed locked for {self.lock_timeout:.0f} s: {exc}. "
                        "Another process (a Dagster run, `ml-release`, a notebook) holds it; "
                        "let it finish or close it, then retry."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that is closed on exit; keep the work inside it short."""
        connection = self._open()
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT; any exception rolls everything back."""
        with self.connect() as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def exists(self, table: str) -> bool:
        """True when `table` is in the warehouse."""
        if not self.path.exists():
            return False
        with self.connect() as connection:
            found = one(
                connection,
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                [table],
            )
        return bool(found[0])

    def columns(self, table: str) -> dict[str, str]:
        """Column name → DuckDB type of `table`, in table order."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        return {name: dtype for name, dtype in rows}

    def row_count(self, table: str) -> int:
        """Number of rows of `table`."""
        with self.connect() as connection:
            return int(one(connection, f"SELECT count(*) FROM {quote(table)}")[0])

    def replace_from_parquet(self, table: str, parquet: Path) -> int:
        """Atomically replace `table` with the rows of a Parquet file; returns the row count."""
        with self.transaction() as connection:
            connection.execute(
                f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT * FROM read_parquet(?)",
                [str(parquet)],
            )
            return int(one(connection, f"SELECT count(*) FROM {quote(table)}")[0])
