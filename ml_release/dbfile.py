"""One DuckDB file shared by processes: short connections, bounded retry on its lock.

DuckDB lets one process at a time open a database file; a second process gets
`Could not set lock on file`. Every operation opens a connection, does one short piece of work
in a transaction, and closes it; a locked file is retried with exponential backoff up to
`lock_timeout` seconds, then reported as `DatabaseLockedError` naming the holder.
"""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import duckdb

from ml_release.errors import DISK_FULL_TEXT, CorruptStateError, DatabaseLockedError

_LOCK_MESSAGE = re.compile(r"lock", re.IGNORECASE)


def one(connection: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    """The single row of a query that returns exactly one (an aggregate, a count)."""
    rows = connection.execute(sql, params or []).fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}: {sql[:120]}")
    return rows[0]


@contextmanager
def setting(connection: duckdb.DuckDBPyConnection, name: str, value: object) -> Iterator[None]:
    """`SET name = value` for the block, then the connection's own value again."""
    (before,) = one(connection, "SELECT current_setting(?)", [name])
    connection.execute(f"SET {name} = ?", [value])
    try:
        yield
    finally:
        connection.execute(f"SET {name} = ?", [before])


class DuckDBFile:
    """A DuckDB database file opened briefly, with bounded waiting for other processes."""

    # What to do when the file is no database any more; subclasses say it for their file.
    repair_hint = "Restore it from a backup, or move it aside to start empty."

    def __init__(self, path: Path | str, lock_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                if any(text in str(exc) for text in DISK_FULL_TEXT):
                    raise
                if not isinstance(exc, duckdb.IOException) or not _LOCK_MESSAGE.search(str(exc)):
                    raise CorruptStateError(
                        f"{self.path} cannot be opened as a DuckDB database "
                        f"({str(exc).splitlines()[0]}). {self.repair_hint}"
                    ) from None
                if time.monotonic() + delay > deadline:
                    raise DatabaseLockedError(
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
    def held(self) -> Iterator[Self]:
        """The file kept open for the block: its connections share the open database.

        For a step that makes many short connections (a release step makes tens): DuckDB
        reuses an open database for a second connection in the same process, so each costs
        well under a millisecond instead of loading the catalog again, and the file is
        checkpointed once, when the block ends. Other processes wait for the block as for
        any connection: hold it for one step's work, not longer.
        """
        keeper = self._open()
        try:
            yield self
        finally:
            keeper.close()

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
