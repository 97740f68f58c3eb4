"""Running a run in this process without ever waiting silently or unstoppably.

The run executes in a worker thread; this thread watches it through a `RunControl` (the
orchestrator's pools, run descriptions, cancel and event log; `ml_release.jobs` gives
Dagster's) and hands on what the run is doing (the step, its last log line). While it
waits for a pool slot another run holds (for `REPORT_AFTER` seconds at least: a slot handed
over at once is no wait), a line says which run and for how long, every `REPORT_EVERY`
seconds; after `max_wait` seconds the run is marked canceled, its slots freed, and
`WaitedTooLong` says how to recover. SIGINT and SIGTERM do the same and raise `Interrupted`.
"""

import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from ml_release.errors import Interrupted, WaitedTooLong

POLL_SECONDS = 1.0
REPORT_AFTER = 3.0  # a step pending for a few polls is a slot being handed over, not a wait
REPORT_EVERY = 15.0
POOL_LOGGER = "sqlalchemy.pool.impl.NullPool"  # the pool of Dagster's SQLite storages


HOST_TAG, PID_TAG = "ml_release/host", "ml_release/pid"


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a run in-process (`ml-release run`)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def process_gone(tags: dict[str, str]) -> bool:
    """Whether the process a run's tags name ran on this host and is gone (killed, OOM)."""
    pid = tags.get(PID_TAG, "")
    if tags.get(HOST_TAG) != socket.gethostname() or not pid.isdigit():
        return False  # launched elsewhere (the daemon, another host): not ours to judge
    return not psutil.pid_exists(int(pid))


@dataclass(frozen=True)
class PoolState:
    """One pool: the runs holding its slots and the runs waiting for one."""

    pool: str
    holders: list[str]
    waiting: list[str]


def _no_records(run_id: str, cursor: str | None) -> tuple[list, str | None]:
    return [], cursor


@dataclass(frozen=True)
class RunControl:
    """What the watcher needs of the orchestrator."""

    pools: Callable[[], list[PoolState]]  # every pool's holders and waiters
    describe: Callable[[str], str]  # a run in a few words
    stop: Callable[[str, str], None]  # mark a run canceled (why) and free its slots
    # A run's event log entries after a cursor, and the new cursor
    records: Callable[[str, str | None], tuple[list, str | None]] = _no_records


def activity_line(entry: Any) -> str | None:
    """What a run's event log entry says it is doing, in a few words; None for bookkeeping.

    A step starting (`serving_report…`) and the lines a step logs (`serving_report: single
    requests: 500/1000 per server`), with the step's name unprefixed (`<model>__` of a folder
    of specs dropped).
    """
    if not entry.step_key:
        return None
    step = entry.step_key.split("__")[-1]
    if entry.dagster_event is None:
        first_line = (entry.user_message or "").partition("\n")[0]
        return f"{step}: {first_line}"
    return f"{step}…" if entry.dagster_event.event_type_value == "STEP_START" else None


class DiscardedSqliteConnection(logging.Filter):
    """Drops the pool's report of a SQLite connection garbage-collected in another thread.

    The instance is read from this thread (pool waits) while the run uses it in the worker, so
    a discarded connection can be finalized in the other thread, where SQLite refuses to roll
    it back; the pool logs that with its traceback. Nothing is lost (the connection is being
    thrown away), and formatting that traceback from inside a garbage collection is harmful on
    Python 3.11: the traceback module parses source with `ast`, and an `ast.parse` nested in
    another one (numpy reading an array header while the collection runs) fails with
    "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a cross-thread SQLite refusal: the record is neither formatted nor shown."""
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, sqlite3.ProgrammingError) and "same thread" in str(error))


def quiet_discarded_sqlite_connections() -> None:
    """Install `DiscardedSqliteConnection` on the pool's logger (once)."""
    logger = logging.getLogger(POOL_LOGGER)
    if not any(isinstance(f, DiscardedSqliteConnection) for f in logger.filters):
        logger.addFilter(DiscardedSqliteConnection())


class _Signals:
    """SIGINT/SIGTERM remembered (not raised) while a run executes in another thread."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)


def watched_run(
    execute: Callable[[], Any],
    control: RunControl,
    run_id: str,
    progress: Callable[[str], None],
    max_wait: float,
    on_activity: Callable[[str], None] | None = None,
) -> Any:
    """`execute()`'s result; its run is watched for pool waits and signals (see module).

    `on_activity` gets, at every poll, the latest thing the run did since the last one
    (`activity_line`): a status line to show, not a log (nothing repeats it when nothing new).
    """
    box: dict[str, Any] = {}
    cursor: str | None = None

    def work() -> None:
        try:
            box["result"] = execute()
        except BaseException as exc:  # handed to the watching thread, raised there
            box["error"] = exc

    quiet_discarded_sqlite_connections()
    worker = threading.Thread(target=work, name=f"run-{run_id[:8]}", daemon=True)
    waiting_since: float | None = None
    reported = 0.0
    with _Signals() as signals:
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if signals.received is not None:
                name = signal.Signals(signals.received).name
                control.stop(run_id, f"stopped by {name}")
                raise Interrupted(
                    f"stopped by {name}: run {run_id} was marked canceled and its pool slots "
                    "freed; nothing of the unfinished step was recorded. Re-run the command "
                    "to gate the candidate.",
                    signals.received,
                )
            if not worker.is_alive():
                break
            if on_activity is not None:  # the event log is read only for someone to show it
                entries, cursor = control.records(run_id, cursor)
                lines = [line for line in map(activity_line, entries) if line]
                if lines:
                    on_activity(lines[-1])
            holding = [s for s in control.pools() if run_id in s.waiting]
            if not holding:
                waiting_since = None
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            waited = now - waiting_since
            holders = (
                "; ".join(control.describe(h) for s in holding for h in s.holders)
                or "a run that has not released it yet"
            )
            if waited > max_wait:
                control.stop(run_id, f"waited {waited:.0f} s for the warehouse pool")
                raise WaitedTooLong(
                    f"gave up after waiting {waited:.0f} s for the '{holding[0].pool}' pool, "
                    f"held by {holders}. If that run is still working, retry later (or raise "
                    "--max-wait). If it is stuck or its process is dead, free it: "
                    "`ml-release recover` (runs of this host whose process is gone), or "
                    "`ml-release recover --run RUN_ID`, or terminate it in the Dagster UI. "
                    "See docs/runbook-recovery.md."
                )
            if waited >= REPORT_AFTER and now - reported >= REPORT_EVERY:
                reported = now
                progress(f"waiting {waited:.0f} s for the '{holding[0].pool}' pool: {holders}")
    if "error" in box:
        raise box["error"]
    return box["result"]
