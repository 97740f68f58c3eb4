"""Where a registry lives: the embedded DuckDB file, or PostgreSQL for deployments.

A backend gives the registry connections for reading and one-transaction writes. Writers are
serialized: DuckDB by its file lock (one writing process, a bounded wait with backoff),
PostgreSQL by an advisory lock taken first in each write transaction
(`ml_release.registry.postgres`). The SQL the registry sends is the subset both engines speak,
with `?` placeholders. `backend_for` turns a location (a file path or a `postgresql://` URL)
into its backend; `ml_release.registry.location` chooses the location from configuration.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from ml_release.dbfile import DuckDBFile
from ml_release.registry.postgres import PostgresBackend, is_postgres_url


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

    def held(self) -> Any:
        """A context manager keeping the storage open for a block of several reads and writes."""


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

    def held(self) -> AbstractContextManager[DuckDBFile]:
        """The file kept open for the block (`DuckDBFile.held`).

        Each read or write in it reuses the open database instead of loading DuckDB's catalog
        again (about 20 ms an open).
        """
        return self.file.held()

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


def backend_for(location: "Path | str", lock_timeout: float = 30.0) -> Backend:
    """The backend of a location: a `postgresql://` URL, else a DuckDB file path."""
    if is_postgres_url(location):
        return PostgresBackend(str(location), lock_timeout)
    return DuckDBBackend(location, lock_timeout)
