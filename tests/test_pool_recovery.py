"""No release waits silently or forever on the warehouse pool.

A run killed with SIGKILL leaves its pool slot claimed in the Dagster instance; before this was
handled, every later `ml-release run` waited on it forever, ignoring SIGTERM. Now the next
release frees slots of runs whose process is gone; a release waiting on a live holder says so
and gives up after `--max-wait` with exit 3; SIGTERM stops it cleanly (exit 143).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_release.demo.generate import write_demo_data
from ml_release.jobs import ensure_instance, pool_states
from tests.conftest import PROJECT, cli_env, spec_dict, write_spec

ML_RELEASE = Path(sys.executable).parent / "ml-release"
pytestmark = pytest.mark.slow

HOLDER = """
import sys, time
import dagster as dg

@dg.asset(pool="warehouse")
def holds_the_pool():
    print("holding", flush=True)
    time.sleep(float(sys.argv[1]))

job = dg.define_asset_job("holder", selection=[holds_the_pool])
defs = dg.Definitions(assets=[holds_the_pool], jobs=[job])
defs.resolve_job_def("holder").execute_in_process(instance=dg.DagsterInstance.get())
"""


@pytest.fixture()
def project(home, tmp_path, demo):
    write_demo_data(home / "demo", demo)
    spec = write_spec(tmp_path, spec_dict())
    env = cli_env(home)
    ensure_instance(home / "dagster")
    return spec, env, home / "dagster"


def _run(spec, env, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ML_RELEASE), "--spec", str(spec), "run", *extra],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _holders(dagster_home: Path) -> list[str]:
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    return [run for state in pool_states(instance) for run in state.holders]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


HANG = """
import sys
from ml_release import faults
from ml_release.cli import main
faults.install(faults.HangAt("warehouse:load"))
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.reliability("fault")
def test_a_killed_release_does_not_block_the_next_one(project):
    spec, env, dagster_home = project
    first = subprocess.Popen(  # hangs inside a step that holds the warehouse pool
        [sys.executable, "-c", HANG, "--spec", str(spec), "run"],
        cwd=PROJECT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    for line in first.stderr:
        if "hanging at warehouse:load" in line:
            break
    held = _holders(dagster_home)
    first.kill()  # SIGKILL: no clean-up at all, the slot stays claimed
    first.wait()
    assert held and _holders(dagster_home) == held

    second = _run(spec, env)
    output, _ = second.communicate(timeout=400)
    assert second.returncode == 0, output
    assert f"marked run {held[0]} failed and freed its slots" in " ".join(output.split())
    assert _holders(dagster_home) == []


@pytest.fixture()
def live_holder(project):
    """A run of another process holding the warehouse pool for two minutes."""
    _, env, _ = project
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "120"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.reliability("fault")
def test_waiting_on_a_live_holder_is_shown_and_bounded(project, live_holder):
    spec, env, dagster_home = project
    started = time.monotonic()
    waiting = _run(spec, env, "--max-wait", "20")
    output, _ = waiting.communicate(timeout=300)
    flat = " ".join(output.split())
    assert waiting.returncode == 3, output
    assert "waiting" in flat and "for the 'warehouse' pool" in flat
    assert "gave up after waiting" in flat and "ml-release recover" in flat
    assert "Traceback" not in output
    assert time.monotonic() - started < 240
    assert live_holder.poll() is None  # the holder was left alone
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    mine = [r for r in instance.get_runs() if r.job_name == "release"]
    assert [r.status for r in mine] == [dg.DagsterRunStatus.CANCELED]
    assert all(run not in _holders(dagster_home) for run in (r.run_id for r in mine))


@pytest.mark.reliability("fault")
def test_sigterm_stops_a_waiting_release_cleanly(project, live_holder):
    spec, env, dagster_home = project
    waiting = _run(spec, env)
    instance = dg.DagsterInstance.from_config(str(dagster_home))

    def queued() -> bool:
        states = pool_states(dg.DagsterInstance.from_config(str(dagster_home)))
        return any(state.waiting for state in states)

    _wait_for(queued, 240, "the release to wait for the pool")
    waiting.send_signal(signal.SIGTERM)
    output, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 143, output
    assert "stopped by SIGTERM" in " ".join(output.split()) and "Traceback" not in output
    mine = [r for r in instance.get_runs() if r.job_name == "release"]
    assert [r.status for r in mine] == [dg.DagsterRunStatus.CANCELED]
