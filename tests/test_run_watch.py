"""The watcher of an in-process run: a pool wait is reported only when it is a real wait."""

import time
from types import SimpleNamespace

import pytest

from ml_release import run_watch
from ml_release.run_watch import PoolState, RunControl, activity_line, watched_run


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(run_watch, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(run_watch, "REPORT_AFTER", 0.3)


def _waits_for(seconds: float) -> RunControl:
    """A control whose run waits `seconds` for the warehouse pool, then gets its slot."""
    started = time.monotonic()

    def pools() -> list[PoolState]:
        waiting = ["run-1"] if time.monotonic() - started < seconds else []
        return [PoolState("warehouse", ["other-run"], waiting)]

    return RunControl(pools, lambda run: f"run {run}", lambda run, why: None)


def _watch(wait: float, run: float) -> list[str]:
    lines: list[str] = []
    watched_run(lambda: time.sleep(run), _waits_for(wait), "run-1", lines.append, max_wait=60)
    return lines


def test_a_slot_handed_over_at_once_is_not_reported():
    """The first poll often sees a step pending for a free slot: that is no wait."""
    assert _watch(wait=0.1, run=0.5) == []


def test_a_real_wait_is_reported_with_its_holder():
    lines = _watch(wait=1.5, run=2.0)
    assert len(lines) == 1 and "for the 'warehouse' pool: run other-run" in lines[0]


def _entry(step: str | None, message: str = "", event: str | None = None) -> SimpleNamespace:
    """An event log entry as the watcher reads it: a log line (no event) or a Dagster event."""
    dagster_event = None if event is None else SimpleNamespace(event_type_value=event)
    return SimpleNamespace(step_key=step, user_message=message, dagster_event=dagster_event)


def test_the_status_line_follows_what_the_run_is_doing():
    """At each poll the latest step start or step log line since the last poll (its first
    line), nothing else: run-level and bookkeeping events say nothing, and a quiet poll
    repeats nothing."""
    batches = [
        [
            _entry(None, "run starting", "RUN_START"),
            _entry("model__serving_report", "", "STEP_START"),
        ],
        [],
        [
            _entry("model__serving_report", "single requests: 250/1000 per server\nmore"),
            _entry("model__serving_report", "", "ASSET_MATERIALIZATION"),
        ],
        [_entry("model__serving_report", "", "STEP_SUCCESS")],
    ]
    cursors: list[str | None] = []

    def records(run_id: str, cursor: str | None) -> tuple[list, str | None]:
        cursors.append(cursor)
        return (batches.pop(0) if batches else []), str(len(cursors))

    control = RunControl(lambda: [], str, lambda run, why: None, records)
    shown: list[str] = []
    watched_run(lambda: time.sleep(0.5), control, "run-1", print, 60, shown.append)
    assert shown == ["serving_report…", "serving_report: single requests: 250/1000 per server"]
    assert cursors[:3] == [None, "1", "2"]  # each poll reads on from where the last one stopped


def test_the_status_line_reads_dagsters_own_event_log(tmp_path):
    """`run_records` and `activity_line` on a real run: if a Dagster upgrade changes the
    records' shape (step keys, log lines, event types), this fails rather than the status line
    going quiet."""
    import dagster as dg

    from ml_release.jobs import run_records

    @dg.asset
    def serving_report(context: dg.AssetExecutionContext) -> None:
        context.log.info("single requests: 1000/1000 per server")

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([serving_report], instance=instance)
        entries, cursor = run_records(instance, result.run_id, None)
        assert run_records(instance, result.run_id, cursor)[0] == []  # read on from the cursor
    lines = [line for line in map(activity_line, entries) if line]
    assert lines == ["serving_report…", "serving_report: single requests: 1000/1000 per server"]


def test_without_a_status_line_the_event_log_is_not_read():
    """The coverage runner and the tests watch runs with nobody to show the status to."""
    pools, reads = [], []

    def records(run_id: str, cursor: str | None) -> tuple[list, str | None]:
        reads.append(cursor)
        return [], cursor

    def look() -> list:
        pools.append(1)
        return []

    control = RunControl(look, str, lambda run, why: None, records)
    assert watched_run(lambda: time.sleep(0.2) or "done", control, "run-1", print, 60) == "done"
    assert len(pools) >= 3 and reads == []  # it polled, and never read the event log
    watched_run(lambda: time.sleep(0.2), control, "run-2", print, 60, on_activity=print)
    assert len(reads) >= 3  # with a status line to show, every poll reads on
