"""A scratch ml-release project driven through its command line, for the reliability suite.

`pristine` builds, once per test module, a home with v1 then v2 promoted by their gates, a v3
ready to gate and a `shuffled` model blocked by them; `project` restores a fresh copy of it
for each test. `cli` runs `ml-release` in a child process, optionally with a fault the test
installs (a crash point, a full disk: never read from the environment by production code);
`nothing_lost` checks RELIABILITY.md's promises after a restart, and `state` is what a bad
input must leave unchanged.
"""

import hashlib
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_release import keys
from ml_release.demo.generate import generate, write_demo_data
from ml_release.faults import CRASH_EXIT_CODE
from ml_release.registry import PRODUCTION_EVENTS, Registry
from ml_release.rollback import artifact_problem
from tests.children import run_driver
from tests.conftest import PROJECT, SMALL, cli_env, demo_artifact, spec_dict, write_spec

MODEL = "credit_default"

DRIVER = """
import errno, sys
from ml_release import faults
from ml_release.cli import main
kind, step = sys.argv[1], sys.argv[2]
if kind == "crash":
    faults.install(faults.CrashAt(step))
elif kind == "disk_full":
    faults.install(faults.RaiseAt(step, OSError(errno.ENOSPC, "No space left on device")))
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def data():
    return generate(seed=11, **SMALL)


def artifact(data, folder: Path, version: str, c: float, shuffle: int | None = None) -> Path:
    return demo_artifact(data, folder, name=MODEL, version=version, c=c, shuffle=shuffle)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, data, request):
    """Built once per module: v1 then v2 in production, v3 ready to gate, `shuffled` blocked.

    v1 and v2 are stored, registered and promoted through the registry (the ledger events a
    gated promotion writes), and the Dagster instance is caught up as any command does: only
    what a module's tests gate needs a release run. A module sets `GATED_BLOCKED = False` when
    its tests do not need the blocked `shuffled` candidate.
    """
    base = tmp_path_factory.mktemp("project")
    home = base / "home"
    write_demo_data(home / "demo", data)
    spec = write_spec(base, spec_dict())
    env = cli_env(home, ML_RELEASE_LOCK_TIMEOUT="4")
    published = base / "published"
    folders = {v: artifact(data, published, v, c) for v, c in (("v1", 1.0), ("v2", 0.5))}
    folders["v3"] = artifact(data, published, "v3", 0.25)
    folders["shuffled"] = artifact(data, base / "bad", "shuffled", 1.0, shuffle=3)
    project = {"spec": spec, "env": env, "home": home, "folders": folders, "tmp": base}
    _promote_through_the_registry(home, [folders["v1"], folders["v2"]])
    if getattr(request.module, "GATED_BLOCKED", True):
        code, out = cli(project, "run", "--candidate", str(folders["shuffled"]))
        assert code == 1, out
    wait_for_sync(project)
    shutil.copytree(home, base / "pristine")
    return project


def _promote_through_the_registry(home: Path, folders: list[Path]) -> None:
    from ml_release.home import artifacts_dir
    from ml_release.jobs import ensure_instance, sync_production
    from ml_release.store import register_stored, store_artifact

    registry = Registry(home / "registry.duckdb")
    previous = None
    for folder in folders:
        manifest, stored = store_artifact(folder, artifacts_dir(home), move=False)
        register_stored(registry, manifest, stored, artifacts_dir(home))
        registry.move_production(
            MODEL, manifest.version, expected=previous, event="promoted", step="promote"
        )
        previous = manifest.version
    instance = ensure_instance(home / "dagster")
    sync_production(instance, registry, MODEL, artifacts_dir(home))
    instance.dispose()


@pytest.fixture()
def project(pristine):
    """A fresh copy of the built state, at the same path (the instance's files name it)."""
    home = pristine["home"]
    shutil.rmtree(home)
    shutil.copytree(pristine["tmp"] / "pristine", home)
    for leftover in ("pwned", "forged"):
        shutil.rmtree(pristine["tmp"] / leftover, ignore_errors=True)
    return pristine


def cli(project, *args: str, fault: tuple[str, str] = ("", "")) -> tuple[int, str]:
    returncode, output = run_driver(
        DRIVER, [*fault, "--spec", str(project["spec"]), *args], env=project["env"], cwd=PROJECT
    )
    assert "Traceback" not in output or returncode == CRASH_EXIT_CODE, output
    return returncode, " ".join(output.split())


def cli_in_process(project, *args: str) -> tuple[int, str]:
    """`ml-release` in this process (no interpreter start): for cases that inject no fault."""
    import contextlib
    import io

    from ml_release.cli import main

    saved = dict(os.environ)
    out = io.StringIO()
    try:
        os.environ.update({k: v for k, v in project["env"].items() if k.startswith(("ML_", "DAG"))})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["--spec", str(project["spec"]), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, " ".join(out.getvalue().split())


def nothing_lost(project) -> Registry:
    """The promises of RELIABILITY.md "Nothing lost", checked after a restart."""
    home = project["home"]
    registry = Registry(home / "registry.duckdb")  # 1. opens without manual steps
    assert registry.problems(MODEL) == []  # 2./3. alias and ledger agree, no gaps
    production = registry.alias(MODEL)
    assert not artifact_problem(registry, home / "artifacts", MODEL, production)  # 3.
    for folder in (home / "artifacts" / MODEL).iterdir():  # 4. no artifact differs
        assert not folder.name.startswith(".tmp-"), folder
    moves = [e.seq for e in registry.events(MODEL, PRODUCTION_EVENTS)]
    # The UI and the ledger tell one story, each move once (a rollback reports it from a
    # detached process, so give that process its time).
    assert wait_for_sync(project) == moves
    return registry


def wait_for_sync(project, timeout: float = 90) -> list[int]:
    """The ledger sequence numbers of `production_model` events, once the last one arrived."""
    home = project["home"]
    moves = [e.seq for e in Registry(home / "registry.duckdb").events(MODEL, PRODUCTION_EVENTS)]
    deadline = time.monotonic() + timeout
    while True:
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))
        reported = sorted(
            int(r.asset_materialization.metadata["ledger_seq"].value)
            for r in instance.fetch_materializations(
                dg.AssetKey(keys.PRODUCTION_MODEL), limit=1000
            ).records
        )
        instance.dispose()
        if reported == moves or time.monotonic() > deadline:
            return reported
        time.sleep(0.5)


def state(project) -> tuple:
    """What a refused input must not change: the ledger, production, every stored file."""
    home = project["home"]
    registry = Registry(home / "registry.duckdb")
    files = {}
    for folder in ("artifacts", "incoming", "quarantine"):
        for path in sorted((home / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    events = [(e.seq, e.event, e.version) for e in registry.events(MODEL)]
    return registry.alias(MODEL), events, files
