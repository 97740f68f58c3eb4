"""Faults, and one restart: nothing lost (RELIABILITY.md), through the command line.

Every case injects its fault in a child `ml-release` process (a crash point, a full disk, a lock
held by another process; the hooks are installed by the test's driver, never read from the
environment), then restarts and checks the promises: the registry opens; every operation that
reported success is in the ledger exactly once; `production` names a version whose artifact
verifies; the Dagster instance's `production_model` history agrees with the ledger; a retry
finishes the job or says it is done.
"""

import pickle
import shutil
import subprocess
import sys

import pytest

from ml_release.artifacts.writer import write_artifact
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.faults import CRASH_EXIT_CODE
from ml_release.registry import Registry
from tests.cli_project import DRIVER, MODEL, cli, data, nothing_lost, pristine, project
from tests.conftest import PROJECT
from tests.test_artifacts import Trap, forge

__all__ = ["data", "pristine", "project"]  # fixtures

pytestmark = [pytest.mark.slow, pytest.mark.reliability("fault")]
PROMOTION_STEPS = ["before_alias", "after_alias", "before_commit", "after_commit"]


# A gated promotion is the registry's compare-and-set, as an override and a rollback are: all
# four steps are killed for those (below, and per backend in test_registry/test_rollback); a
# release run is killed at the first and the last, each costing two release runs.
@pytest.mark.parametrize("step", ["promote:before_alias", "promote:after_commit"])
def test_a_release_killed_while_promoting(project, step):
    code, _ = cli(
        project, "run", "--candidate", str(project["folders"]["v3"]), fault=("crash", step)
    )
    assert code == CRASH_EXIT_CODE
    code, out = cli(project, "run", "--candidate", str(project["folders"]["v3"]))  # the retry
    assert code == 0, out
    registry = nothing_lost(project)
    assert [e.version for e in registry.events(MODEL, ("promoted",))] == ["v1", "v2", "v3"]


def test_a_release_killed_between_the_ledger_and_the_instance(project):
    fault = ("crash", "production:before_report")
    code, _ = cli(project, "run", "--candidate", str(project["folders"]["v3"]), fault=fault)
    assert code == CRASH_EXIT_CODE
    assert Registry(project["home"] / "registry.duckdb").alias(MODEL) == "v3"  # committed
    code, out = cli(project, "run", "--candidate", str(project["folders"]["v3"]))
    assert code == 0 and "already in production" in out, out
    nothing_lost(project)  # the next command reported the missing production_model event


@pytest.mark.parametrize("step", [f"rollback:{s}" for s in PROMOTION_STEPS])
def test_a_rollback_killed_at_each_step(project, step):
    code, _ = cli(project, "rollback", "--reason", "incident", fault=("crash", step))
    assert code == CRASH_EXIT_CODE
    code, out = cli(project, "rollback", "--reason", "incident")  # the runbook's retry
    assert code == 0, out
    registry = nothing_lost(project)
    assert registry.alias(MODEL) == "v1"
    assert [e.version for e in registry.events(MODEL, ("rolled_back",))] == ["v1"]


@pytest.mark.parametrize("step", [f"override:{s}" for s in PROMOTION_STEPS])
def test_an_override_killed_at_each_step(project, step):
    args = ("promote", "shuffled", "--override", "--approver", "a.lead", "--reason", "test")
    code, _ = cli(project, *args, fault=("crash", step))
    assert code == CRASH_EXIT_CODE
    code, out = cli(project, *args)
    assert code == 0, out
    registry = nothing_lost(project)
    assert [e.version for e in registry.events(MODEL, ("overridden",))] == ["shuffled"]


@pytest.mark.parametrize("step", ["record:refused:before_commit", "record:refused:after_commit"])
def test_a_refusal_killed_at_each_step(project, step):
    forged = forge(
        write_artifact(
            _model_of(project),
            project["tmp"] / "forged",
            name=MODEL,
            version="v9",
            features=REQUIRED_COLUMNS,
        ),
        pickle.dumps(Trap(project["tmp"] / "pwned")),
    )
    code, _ = cli(project, "register", str(forged), fault=("crash", step))
    assert code == CRASH_EXIT_CODE
    code, out = cli(project, "register", str(forged))
    assert code == 4, out
    registry = nothing_lost(project)
    refused = registry.events(MODEL, ("refused",))
    assert len(refused) == (2 if step.endswith("after_commit") else 1)  # one per attempt
    assert not (project["tmp"] / "pwned").exists()


def _model_of(project):
    from ml_release.artifacts.skops_io import load_model

    return load_model(project["folders"]["v1"])


@pytest.mark.parametrize(
    ("step", "args"),
    [
        ("artifact:write", ("register",)),  # the .skops file is published into incoming/
        ("rollback:before_commit", ("rollback",)),  # the registry's commit
        ("warehouse:load", ("run",)),  # loading a dataset into the warehouse
    ],
    ids=["artifact", "registry", "warehouse"],
)
def test_a_full_disk(project, step, args):
    registry = Registry(project["home"] / "registry.duckdb")
    before = (registry.alias(MODEL), len(registry.events(MODEL)))
    if args == ("register",):
        from ml_release.artifacts.skops_io import skops_bytes

        path = project["tmp"] / "m.skops"
        path.write_bytes(skops_bytes(_model_of(project)))
        args = ("register", str(path))
    elif args == ("run",):
        args = ("run", "--candidate", str(project["folders"]["v3"]))
    code, out = cli(project, *args, fault=("disk_full", step))
    assert code == 5 and "disk is full" in out, out
    registry = nothing_lost(project)
    if step != "warehouse:load":  # a release records its error; nothing else may change
        assert (registry.alias(MODEL), len(registry.events(MODEL))) == before
    assert registry.alias(MODEL) == before[0]
    incoming = project["home"] / "incoming"
    assert not incoming.exists() or not [p for p in incoming.iterdir() if p.name[0] != "."]


def test_the_registry_locked_by_another_process(project):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(120)",
            str(project["home"] / "registry.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out = cli(project, "status")  # readers never wait: the last snapshot
        assert code == 0 and "production v2" in out and "snapshot" in out, out
        code, out = cli(project, "rollback")  # writers wait a bounded time, then exit 3
        assert code == 3 and "stayed locked" in out, out
    finally:
        holder.kill()
        holder.wait()
    registry = nothing_lost(project)
    assert registry.alias(MODEL) == "v2" and not registry.events(MODEL, ("rolled_back",))


def test_the_rollback_target_deleted_or_corrupted(project):
    shutil.rmtree(project["home"] / "artifacts" / MODEL / "v1")
    code, out = cli(project, "status")
    assert code == 0 and "rollback target (none)" in out, out
    code, out = cli(project, "rollback")
    assert code == 2 and "no known-good version" in out, out
    model_file = project["home"] / "artifacts" / MODEL / "v2" / "model.skops"
    model_file.write_bytes(model_file.read_bytes()[:-16] + b"\0" * 16)
    code, out = cli(project, "status")  # the live artifact's corruption is shown, not hidden
    assert code == 0 and "does not match its manifest" in out, out
    registry = Registry(project["home"] / "registry.duckdb")
    assert registry.problems(MODEL) == [] and registry.alias(MODEL) == "v2"


def test_a_rollback_racing_a_promotion(project):
    override = ("promote", "shuffled", "--override", "--approver", "a", "--reason", "race")
    base = [sys.executable, "-c", DRIVER, "", "", "--spec", str(project["spec"])]
    racers = [
        subprocess.Popen(
            [*base, *args],
            cwd=PROJECT,
            env=project["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in (("rollback", "--reason", "race"), override)
    ]
    codes = [p.wait(timeout=300) for p in racers]
    assert set(codes) <= {0, 3}, [p.stdout.read() for p in racers]
    registry = nothing_lost(project)
    moves = registry.events(MODEL, ("rolled_back", "overridden"))
    assert 1 <= len(moves) <= 2 and codes.count(0) == len(moves)
