"""The watcher of an in-process run: a pool wait is reported only when it is a real wait."""

import time

import pytest

from ml_release import run_watch
from ml_release.run_watch import PoolState, RunControl, watched_run


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
