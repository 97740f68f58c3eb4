"""One DuckDB file shared by processes: short connections, bounded retry on its lock.

DuckDB lets one process at a time open a database file; a second process gets
`Could not set lock on file`. Every operation opens a connection, does one short piece of work
in a transaction, and closes it; a locked file is retried with exponential backoff up to
`lock_timeout` seconds, then reported as `DatabaseLockedError` naming the holder.

DuckDB's own lock is not enough to share a file between processes: a process that opens it
while another is still closing it can lose that process's last commit, with no error on
either side (reproduced with DuckDB 2.0.1: three processes each committing eight single-row
inserts in turn lost one in 3 of 40 rounds on a busy 2-core machine; none in 60 rounds with
the lock below). So the project's processes also take an exclusive `flock` on a lock file
beside the database (`<file>.lock`) before opening it, and release it only after the last
connection of the process to it has closed (`_OpenFiles`).

Opening a DuckDB database costs about 25 ms whatever its size (DuckDB builds its catalog of
some 3,300 built-in functions for every database instance), and a release opened one about
25 times. So a process keeps one in-memory DuckDB database and attaches each file to it while
any of its connections is open: a connection is a cursor of that database whose default
catalog is the file's, about 2 ms to attach (docs/decisions.md item 46). The file is detached
(checkpointed, closed, its DuckDB lock released) when the last connection closes, exactly
where a connection's close used to close it: the lock file's protocol is unchanged.
"""

import contextlib
import fcntl
import itertools
import os
import re
import tempfile
import threading
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


def _spill() -> str:
    """Where the process's DuckDB database spills what does not fit in memory.

    The system's temporary folder (`$TMPDIR`), one folder per process, which DuckDB creates
    when it first spills and removes when the database closes. Not beside a database file:
    DuckDB refuses to move its temporary folder once it has spilled, and the process outlives
    the files it opens (the first one's folder may be gone by the next spill).
    """
    return str(Path(tempfile.gettempdir()) / f"ml-release-duckdb-{os.getpid()}")


def _let_go(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)  # before the close: a forked child may share the descriptor
    os.close(fd)


def _take_lock(database: Path) -> int | None:
    """A descriptor holding the exclusive `flock` of `<database>.lock`, or None when taken."""
    fd = os.open(database.with_name(database.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class _OpenFiles:
    """The files this process has open: each one's lock, attached to the process's database.

    Counted per file (by its resolved path): the first connection takes the lock file's
    `flock` and attaches the file to the process's in-memory DuckDB database; the last one's
    close detaches it (DuckDB checkpoints and closes a file when it is detached), then lets
    the lock go. Every connection is a cursor of that database whose default catalog (`USE`)
    is its file's, so unqualified names mean the file's tables, as on a connection of the file.
    """

    _database: duckdb.DuckDBPyConnection | None = None
    _open: dict[Path, tuple[int, str, int]] = {}  # file -> (lock descriptor, catalog, connections)
    _names = itertools.count()
    _guard = threading.Lock()
    _orphans: list[duckdb.DuckDBPyConnection] = []  # a parent's database, not used in a child

    @classmethod
    def connect(cls, path: Path) -> duckdb.DuckDBPyConnection | None:
        """A connection to `path`, or None while another process holds its lock file.

        Raises duckdb.Error when the file cannot be attached (its lock is let go first).
        """
        key = path.resolve()
        with cls._guard:
            if key in cls._open:
                fd, name, count = cls._open[key]
            else:
                fd, name, count = _take_lock(key), f"file_{next(cls._names)}", 0
                if fd is None:
                    return None
                if cls._database is None:
                    cls._database = duckdb.connect(":memory:", config={"temp_directory": _spill()})
                try:
                    cls._database.execute(f"ATTACH ? AS {name}", [str(key)])
                except BaseException:
                    _let_go(fd)
                    raise
            cls._open[key] = (fd, name, count + 1)
            cursor = cls._database.cursor()
        try:
            cursor.execute(f"USE {name}")
        except BaseException:
            cls.close(path, cursor)
            raise
        return cursor

    @classmethod
    def close(cls, path: Path, connection: duckdb.DuckDBPyConnection) -> None:
        """Close `connection`; the file's last one detaches it and lets its lock go."""
        try:
            connection.close()
        finally:
            cls._release(path.resolve())

    @classmethod
    def _release(cls, key: Path) -> None:
        with cls._guard:
            fd, name, count = cls._open.pop(key)
            if count > 1:
                cls._open[key] = (fd, name, count - 1)
                return
            try:
                assert cls._database is not None
                cls._database.execute(f"DETACH {name}")
            finally:
                _let_go(fd)

    @classmethod
    def forget(cls) -> None:
        """In a forked child: the parent's files, locks and database stay the parent's.

        The child closes its copies of the lock descriptors (which does not let the parent's
        locks go), so a child that outlives its parent does not keep a file locked, and
        starts a database of its own: DuckDB's threads did not come along. The parent's
        database object stays referenced, never used. (A child that ends through the
        interpreter's exit rather than `os._exit`, as the project's and multiprocessing's
        forked children do, would still finalize what it inherited.)
        """
        for fd, _, _ in cls._open.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        if cls._database is not None:
            cls._orphans.append(cls._database)
        cls._database, cls._open, cls._guard = None, {}, threading.Lock()


os.register_at_fork(after_in_child=_OpenFiles.forget)


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
        """A connection, the process holding the file's lock (`_close` releases it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                connection = _OpenFiles.connect(self.path)
            except duckdb.Error as exc:
                if any(text in str(exc) for text in DISK_FULL_TEXT):
                    raise
                if not isinstance(exc, duckdb.IOException) or not _LOCK_MESSAGE.search(str(exc)):
                    raise CorruptStateError(
                        f"{self.path} cannot be opened as a DuckDB database "
                        f"({str(exc).splitlines()[0]}). {self.repair_hint}"
                    ) from None
                busy: object = exc  # a process outside the project (a notebook) has it open
            else:
                if connection is not None:
                    return connection
                busy = f"{self.path.name}.lock is held"
            if time.monotonic() + delay > deadline:
                raise DatabaseLockedError(
                    f"{self.path} stayed locked for {self.lock_timeout:.0f} s: {busy}. "
                    "Another process (a Dagster run, `ml-release`, a notebook) holds it; "
                    "let it finish or close it, then retry."
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _close(self, connection: duckdb.DuckDBPyConnection) -> None:
        _OpenFiles.close(self.path, connection)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that is closed on exit; keep the work inside it short."""
        connection = self._open()
        try:
            yield connection
        finally:
            self._close(connection)

    @contextmanager
    def held(self) -> Iterator[Self]:
        """The file kept open for the block: its connections share the open database.

        For a step that makes many short connections (a release step makes tens): the file
        stays attached, so each costs well under a millisecond instead of attaching it again,
        and the file is checkpointed once, when the block ends. Other processes wait for the
        block as for any connection: hold it for one step's work, not longer.
        """
        keeper = self._open()
        try:
            yield self
        finally:
            self._close(keeper)

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
