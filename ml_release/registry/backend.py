"""Where a registry lives: the embedded DuckDB file (PostgreSQL for deployments is beside it).

A backend gives the registry connections for reading and one-transaction writes. Writers are
serialized: DuckDB by its file lock (one writing process, a bounded wait with backoff), a
server database by a table lock taken at the start of each write. The SQL the registry sends
is the subset both engines speak, with `?` placeholders.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ml_release.dbfile import DuckDBFile


class Connection(Protocol):
    """What the registry needs of a connection: `execute(sql, params).fetchall()`."""

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run one statement with `?` placeholders."""


class Backend(Protocol):
    """A registry's storage."""

    where: str  # for messages: a file path or a database address without its password

    def read(self) -> Any:
        """A context manager yielding a connection for reading."""

    def write(self, after_commit: Callable[[Connection], None] | None = None) -> Any:
        """A context manager yielding a connection inside one serialized write transaction.

        `after_commit` runs on the same connection after COMMIT, still holding the writer's
        lock (the DuckDB backend writes its reader snapshot there).
        """


class DuckDBBackend:
    """The embedded default: `ML_RELEASE_HOME/registry.duckdb`."""

    def __init__(self, path: Path | str, lock_timeout: float = 30.0) -> None:
        self.file = DuckDBFile(path, lock_timeout)
        self.file.repair_hint = (
            f"Restore it from a backup. Every committed write also left a readable copy of the "
            f"versions and the whole ledger in {Path(path).name}.snapshot.json beside it."
        )
        self.path = Path(path)
        self.where = str(self.path)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A short-lived connection (the file's lock is held while it is open)."""
        with self.file.connect() as connection:
            yield connection

    @contextmanager
    def write(
        self, after_commit: Callable[[Connection], None] | None = None
    ) -> Iterator[Connection]:
        """One transaction; `after_commit` runs before the file is released."""
        with self.file.connect() as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            if after_commit is not None:
                after_commit(connection)
