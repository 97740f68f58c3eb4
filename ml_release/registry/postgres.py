"""The registry on PostgreSQL: for deployments where many processes and machines write.

Writers serialize on a transaction-scoped advisory lock taken first in every write transaction
(`pg_advisory_xact_lock`, keyed by the registry's schema, so registries in two schemas of one
database do not wait for each other). The compare-and-set of an alias and the ledger's next
sequence number are thus read and written by one writer at a time: `seq` stays gap-free, and a
crash anywhere before COMMIT leaves nothing (the server rolls back a dead client's
transaction). The wait for the lock is bounded by `lock_timeout`; past it the write fails with
`DatabaseLockedError`.
Readers take no lock at all: MVCC gives each read transaction a consistent snapshot, and a
writer in progress never delays it, so no reader copy (as for the DuckDB file) is needed.

The URL's password is never shown: `where` is the URL without it, and connection errors are
reported with that address.
"""

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from ml_release.errors import DatabaseLockedError, ServiceUnavailableError

URL_SCHEMES = ("postgresql://", "postgres://")
# The advisory lock's first key, for every registry writer ("mlre" as an integer); the second
# is a hash of the schema the registry's tables live in.
WRITE_LOCK_CLASS = 0x6D6C7265
CONNECT_ATTEMPTS = 3


def is_postgres_url(location: object) -> bool:
    """Whether `location` is a PostgreSQL URL (and not a file path)."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def redacted(url: str) -> str:
    """`url` without its password (for messages, `status` and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _end(connection: Any, statement: str) -> None:
    # A broken connection (server gone, client interrupted) has no transaction left to end.
    if not connection.broken:
        connection.execute(statement)


class _Cursor:
    """Adapts psycopg to the registry's `?` placeholders (the subset DuckDB also speaks)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run one statement; `?` becomes psycopg's `%s`."""
        return self._connection.execute(sql.replace("%", "%%").replace("?", "%s"), params or [])


class PostgresBackend:
    """A registry database on a PostgreSQL server, addressed by a `postgresql://` URL."""

    def __init__(self, url: str, lock_timeout: float = 30.0, connect_timeout: int = 10) -> None:
        self.url = url
        self.where = redacted(url)
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"PostgresBackend({self.where!r})"

    def _connect(self) -> Any:
        import psycopg

        delay = 0.2
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return psycopg.connect(
                    self.url, connect_timeout=self.connect_timeout, autocommit=True
                )
            except psycopg.OperationalError as exc:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    detail = " ".join(str(exc).replace(self.url, self.where).split())
                    raise ServiceUnavailableError(
                        f"the registry database at {self.where} cannot be reached after "
                        f"{CONNECT_ATTEMPTS} attempts: {detail}. Check that the server runs and "
                        "that ML_RELEASE_REGISTRY_URL (or the model_registry resource's url) "
                        "names it, with the right user, password and database."
                    ) from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def held(self) -> AbstractContextManager[None]:
        """Nothing to keep open: a server connection costs no catalog load."""
        return nullcontext()

    @contextmanager
    def read(self) -> Iterator[_Cursor]:
        """One read-only REPEATABLE READ transaction: a consistent snapshot, no lock."""
        with self._connect() as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _Cursor(connection)
            finally:
                _end(connection, "ROLLBACK")

    @contextmanager
    def write(self, after_commit: Callable[[_Cursor], None] | None = None) -> Iterator[_Cursor]:
        """One transaction holding the registry's write lock from its first statement.

        Any exception, and a client killed at any point, roll the whole transaction back.
        """
        import psycopg

        with self._connect() as connection:
            cursor = _Cursor(connection)
            connection.execute("BEGIN")
            try:
                cursor.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
                try:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))",
                        [WRITE_LOCK_CLASS],
                    )
                except psycopg.errors.LockNotAvailable:
                    raise DatabaseLockedError(
                        f"the registry at {self.where} stayed locked by another writer for "
                        f"{self.lock_timeout:.0f} s. Another promotion, rollback or registration "
                        "is in progress (or hangs): let it finish, then retry."
                    ) from None
                yield cursor
            except BaseException:
                _end(connection, "ROLLBACK")
                raise
            connection.execute("COMMIT")
            if after_commit is not None:
                after_commit(cursor)
