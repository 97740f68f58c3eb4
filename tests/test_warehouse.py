"""The warehouse waits for another process's lock, within a bound, then says who holds it."""

import subprocess
import sys
import time

import pytest

from ml_release.errors import DatabaseLockedError
from ml_release.warehouse import Warehouse

HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
connection.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS x")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path, seconds):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_waits_for_a_lock_held_by_another_process(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = _hold(path, 1.5)
    start = time.monotonic()
    try:
        assert Warehouse(path, lock_timeout=30).row_count("t") == 1
    finally:
        holder.wait()
    assert time.monotonic() - start >= 0.5  # it really waited for the holder


def test_gives_up_with_a_clear_error_after_the_timeout(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = _hold(path, 10)
    try:
        with pytest.raises(DatabaseLockedError, match=r"stayed locked.*retry"):
            Warehouse(path, lock_timeout=0.5).row_count("t")
    finally:
        holder.kill()
        holder.wait()


OPEN = """
import sys, duckdb
duckdb.connect(sys.argv[1]).close()
"""


def _opens_from_another_process(path) -> bool:
    return (
        subprocess.run([sys.executable, "-c", OPEN, str(path)], capture_output=True).returncode == 0
    )


def test_a_held_file_is_busy_for_the_block_and_released_after_it(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(path, lock_timeout=0.5)
    with warehouse.held() as held:
        assert held is warehouse
        with warehouse.transaction() as connection:
            connection.execute("CREATE TABLE t AS SELECT 1 AS x")
        with pytest.raises(RuntimeError), warehouse.transaction() as connection:
            connection.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("rolled back")
        assert warehouse.row_count("t") == 1  # committed work seen, rolled-back work not
        assert not _opens_from_another_process(path)  # held for the block, as documented
    assert _opens_from_another_process(path)  # released at the end of the block


def test_a_held_file_is_released_when_the_block_fails(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with pytest.raises(ValueError), Warehouse(path).held():
        raise ValueError("a step failed")
    assert _opens_from_another_process(path)


LOCK_FILE_ONLY = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.reliability("fault")
def test_the_lock_file_keeps_other_processes_out_until_the_holder_lets_go(tmp_path):
    """The project's lock file decides, not DuckDB's lock alone, which another process can get
    while this one is still closing the file (and so lose its last commit). Here a process
    holds the lock file only, as during such a close: a warehouse waits for it, or says so."""
    path = tmp_path / "warehouse.duckdb"
    with Warehouse(path).transaction() as connection:
        connection.execute("CREATE TABLE t AS SELECT 1 AS x")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_FILE_ONLY, str(path), "1.5"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(DatabaseLockedError, match=r"warehouse\.duckdb\.lock is held"):
            Warehouse(path, lock_timeout=0.3).row_count("t")
        start = time.monotonic()
        assert Warehouse(path, lock_timeout=30).row_count("t") == 1
    finally:
        holder.wait()
    assert time.monotonic() - start >= 0.5  # it waited for the holder


PROJECT_OPEN = """
import sys
from ml_release.errors import DatabaseLockedError
from ml_release.warehouse import Warehouse
try:
    Warehouse(sys.argv[1], lock_timeout=0.3).exists("t")
except DatabaseLockedError:
    sys.exit(3)
"""


def _project_process_opens(path) -> bool:
    done = subprocess.run([sys.executable, "-c", PROJECT_OPEN, str(path)], capture_output=True)
    assert done.returncode in (0, 3), done.stderr
    return done.returncode == 0


def test_a_forked_child_neither_shares_nor_keeps_its_parents_lock(tmp_path):
    import os

    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(path)
    with warehouse.held():
        child = os.fork()
        if child == 0:  # the file is the parent's until the parent lets go
            try:
                Warehouse(path, lock_timeout=0.3).exists("t")
                code = 1
            except DatabaseLockedError:
                code = 0
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not _project_process_opens(path)  # the child's exit did not release it
    assert _project_process_opens(path)


# -- one DuckDB database per process, the files attached to it (ml_release.dbfile._OpenFiles) -
def _with_table(path, rows: int) -> Warehouse:
    warehouse = Warehouse(path)
    with warehouse.transaction() as connection:
        connection.execute(f"CREATE TABLE t AS SELECT range AS x FROM range({rows})")
    return warehouse


def test_a_process_builds_one_duckdb_database_however_many_times_it_opens_files(
    tmp_path, monkeypatch
):
    """Opening a DuckDB database costs about 25 ms (its catalog of built-in functions): the
    files are attached to one database per process instead of each open building one."""
    import duckdb

    from ml_release import dbfile

    monkeypatch.setattr(dbfile._OpenFiles, "_database", None)
    built = []
    real_connect = duckdb.connect
    monkeypatch.setattr(
        dbfile.duckdb, "connect", lambda *a, **k: built.append(a) or real_connect(*a, **k)
    )
    first, second = _with_table(tmp_path / "a.duckdb", 3), _with_table(tmp_path / "b.duckdb", 5)
    for _ in range(10):
        assert (first.row_count("t"), second.row_count("t")) == (3, 5)
    assert len(built) == 1


def test_files_open_at_once_each_see_only_their_own_tables(tmp_path):
    first, second = _with_table(tmp_path / "a.duckdb", 3), _with_table(tmp_path / "b.duckdb", 5)
    with second.transaction() as connection:
        connection.execute("CREATE TABLE only_b AS SELECT 'text' AS y")
    with first.held(), second.held():
        assert first.row_count("t") == 3 and second.row_count("t") == 5
        assert not first.exists("only_b") and second.exists("only_b")
        assert first.columns("only_b") == {} and second.columns("only_b") == {"y": "VARCHAR"}
        with first.connect() as connection:
            assert connection.execute("SELECT count(*) FROM t").fetchall() == [(3,)]


def test_the_last_close_checkpoints_and_releases_the_file(tmp_path):
    """Where a connection's close closed the file, the last one's close still does: the
    write is in the file itself (no WAL left to replay) and another process opens it."""
    path = tmp_path / "warehouse.duckdb"
    warehouse = _with_table(path, 4)
    with warehouse.held():
        with warehouse.transaction() as connection:
            connection.execute("INSERT INTO t VALUES (99)")
        assert not _project_process_opens(path)  # still held: the block has not ended
    assert not path.with_name(path.name + ".wal").exists()
    counted = subprocess.run(
        [sys.executable, "-c", COUNTS, str(path)], capture_output=True, text=True, check=True
    )
    assert counted.stdout.strip() == "5"


COUNTS = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print(connection.execute("SELECT count(*) FROM t").fetchall()[0][0])
"""


def test_a_forked_child_opens_files_with_a_database_of_its_own(tmp_path):
    import os

    parents = _with_table(tmp_path / "a.duckdb", 2)
    other = tmp_path / "b.duckdb"
    with parents.held():
        child = os.fork()
        if child == 0:  # the parent's DuckDB database did not come along (no threads): a new one
            try:
                code = 0 if _with_table(other, 6).row_count("t") == 6 else 1
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parents.row_count("t") == 2
    assert Warehouse(other).row_count("t") == 6


def test_a_process_that_spilled_to_disk_still_opens_its_files(tmp_path):
    """DuckDB refuses to move its temporary folder once it has spilled into it, and an earlier
    test's folder is gone by now: the process's database spills into one folder of its own
    for its whole life, so a spill does not make every later open fail (as "cannot be opened
    as a DuckDB database")."""
    from ml_release.dbfile import setting

    first, second = _with_table(tmp_path / "a.duckdb", 3), Warehouse(tmp_path / "b.duckdb")
    with first.connect() as connection, setting(connection, "memory_limit", "60MB"):
        spilled = connection.execute(
            "SELECT count(*) FROM (SELECT md5(range::VARCHAR) AS s FROM range(1500000) ORDER BY s)"
        ).fetchall()
    assert spilled == [(1_500_000,)]
    assert first.row_count("t") == 3
    assert not second.exists("t")
