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
