"""`new_model_artifact_sensor`: its run requests, its cursor, and what it does with bad input.

Each tick is evaluated as the daemon would: a fresh context built from the previous tick's
cursor, against the ML_RELEASE_HOME of the test. The sensor's clock is replaced by a fake so
the grace period can pass without sleeping.
"""

import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from ml_release import keys, sensors
from ml_release.artifacts import MANIFEST_FILE, MODEL_FILE, verify_artifact, writer
from ml_release.artifacts.skops_io import skops_bytes
from ml_release.artifacts.writer import write_artifact
from ml_release.definitions import build_definitions
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.home import incoming_dir
from ml_release.incoming import GRACE_SECONDS
from ml_release.model import build_pipeline
from ml_release.spec import load_spec
from tests.conftest import PROJECT

MODEL = "credit_default"
VERSION_TAG = keys.CANDIDATE_VERSION
TEN_YEARS = 10 * 365 * 24 * 3600.0


@pytest.fixture(scope="module")
def model():
    data = generate(seed=5, n_training=1500, n_evaluation=10, n_serving=10)
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {}
    )
    return pipeline.fit(data.training[list(REQUIRED_COLUMNS)], data.training["defaulted"])


@pytest.fixture(scope="module")
def other_model(model):
    """The same model with a shifted intercept: other bytes, so another digest."""
    other = copy.deepcopy(model)
    other.named_steps["estimator"].intercept_ = other.named_steps["estimator"].intercept_ + 0.5
    return other


@pytest.fixture(autouse=True)
def no_git(monkeypatch):
    # write_artifact would run `git rev-parse` in whatever folder the tests run from.
    monkeypatch.setattr(writer, "current_code_version", lambda: None)


class Clock:
    """The sensor's `time.time`, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sensors, "time", SimpleNamespace(time=fake.time))
    return fake


@dataclass
class Tick:
    runs: list[dg.RunRequest]
    skip: str | None
    cursor: str | None


def tick(cursor: str | None = None) -> Tick:
    """Evaluate the sensor once from `cursor`, as the daemon does after loading it."""
    spec = load_spec(PROJECT / "release.yaml")
    defs = build_definitions(spec)
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=dg.DagsterInstance.ephemeral(),
        resources={k: defs.resources[k] for k in ("model_registry", "artifact_inbox")},
    )
    result = defs.resolve_sensor_def(keys.ARTIFACT_SENSOR)(context)
    assert isinstance(result, dg.SensorResult)
    runs = list(result.run_requests or [])
    added = [key for r in result.dynamic_partitions_requests or [] for key in r.partition_keys]
    assert added == [r.partition_key for r in runs]  # every run's partition is added with it
    for run in runs:
        assert run.run_key == f"{MODEL}:{run.partition_key}"  # one run per model and digest
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return Tick(runs, skip, result.cursor)


def registry():
    from ml_release.home import registry_path
    from ml_release.registry import Registry

    return Registry(registry_path())


def run_stores(run: dg.RunRequest) -> None:
    """What the requested run's candidate_model step does with the artifact: store it."""
    from ml_release.home import artifacts_dir
    from ml_release.store import import_artifact

    import_artifact(artifact_of(run), artifacts_dir(), registry(), move=False)


def publish(model, version: str) -> Path:
    return write_artifact(
        model, incoming_dir(), name=MODEL, version=version, features=REQUIRED_COLUMNS
    )


def artifact_of(run: dg.RunRequest) -> Path:
    assert set(run.run_config) == {"ops"}
    assert set(run.run_config["ops"]) == {keys.CANDIDATE_MODEL}
    return Path(run.run_config["ops"][keys.CANDIDATE_MODEL]["config"]["artifact"])


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def quarantined(home: Path) -> list[Path]:
    folder = home / "quarantine"
    return sorted(folder.iterdir()) if folder.exists() else []


def touch_tree(folder: Path, when: float) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (when, when), follow_symlinks=False)


def without_manifest(model, version: str) -> Path:
    folder = publish(model, version)
    (folder / MANIFEST_FILE).unlink()
    return folder


def truncated(model, version: str) -> Path:
    """A folder whose model file is cut short, as a copy still in progress leaves it."""
    folder = publish(model, version)
    data = (folder / MODEL_FILE).read_bytes()
    (folder / MODEL_FILE).write_bytes(data[: len(data) // 2])
    return folder


PARTIAL = {
    "no_manifest": (without_manifest, "has no manifest.json"),
    "truncated_model": (truncated, "does not match its manifest"),
}


# -- a complete artifact ---------------------------------------------------------------------
def test_complete_artifact_requests_one_run_for_its_partition(home, model, clock):
    folder = publish(model, "v1")
    digest = verify_artifact(folder).sha256

    first = tick()

    assert first.skip is None and len(first.runs) == 1
    run = first.runs[0]
    assert run.partition_key == digest
    assert run.tags[VERSION_TAG] == "v1"
    assert artifact_of(run) == folder  # the run moves it into the store, not the tick
    assert not (home / "artifacts").exists()
    assert json.loads(first.cursor)["requested"] == [f"{MODEL}:{digest}"]


def test_run_config_is_valid_for_the_release_job_and_a_wrong_one_is_not(home, model, clock):
    publish(model, "v1")
    job = build_definitions(load_spec(PROJECT / "release.yaml")).resolve_job_def(keys.RELEASE_JOB)

    run = tick().runs[0]

    dg.validate_run_config(job, run.run_config)
    misspelt = {"ops": {keys.CANDIDATE_MODEL: {"config": {"artefact": str(artifact_of(run))}}}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, misspelt)


@pytest.mark.reliability("fault")
def test_reevaluated_tick_repeats_its_run_key_and_the_next_tick_requests_nothing(
    home, model, clock
):
    folder = publish(model, "v1")
    first = tick()

    # The daemon died before committing the tick: it evaluates the same cursor again.
    again = tick(None)

    assert [r.run_key for r in again.runs] == [r.run_key for r in first.runs]
    assert again.runs[0].run_config == first.runs[0].run_config
    assert folder.is_dir()  # its run is not committed yet: the folder must stay

    committed = tick(first.cursor)

    assert committed.runs == [] and committed.skip is not None
    assert folder.is_dir()  # requested, but its run has not stored it yet
    run_stores(first.runs[0])
    assert tick(committed.cursor).runs == []
    assert not folder.exists()  # stored and registered by its run: the inbox copy goes
    assert verify_artifact(home / "artifacts" / MODEL / "v1").sha256 == first.runs[0].partition_key


def test_two_artifacts_in_one_tick_request_two_runs(home, model, other_model, clock):
    digests = {
        verify_artifact(publish(m, v)).sha256 for m, v in [(model, "v1"), (other_model, "v2")]
    }

    first = tick()

    assert {r.partition_key for r in first.runs} == digests and len(first.runs) == 2
    for run in first.runs:
        assert artifact_of(run).parent == incoming_dir()
        assert verify_artifact(artifact_of(run)).sha256 == run.partition_key
        run_stores(run)
    assert tick(first.cursor).runs == []
    assert entries(home / "incoming") == []


# -- partial artifacts -----------------------------------------------------------------------
@pytest.mark.reliability("fault")
@pytest.mark.parametrize("kind", list(PARTIAL))
def test_partial_artifact_waits_then_is_quarantined_with_its_reason(home, model, clock, kind):
    make, problem = PARTIAL[kind]
    folder = make(model, "v1")

    first = tick()

    assert first.runs == [] and "1 waiting" in first.skip
    assert folder.is_dir() and quarantined(home) == []

    clock.now += GRACE_SECONDS - 1
    still = tick(first.cursor)

    assert still.runs == [] and "1 waiting" in still.skip
    assert folder.is_dir() and quarantined(home) == []

    clock.now += 2
    late = tick(still.cursor)

    assert late.runs == [] and "1 quarantined" in late.skip
    assert not folder.exists()
    [moved] = quarantined(home)
    assert moved.name.startswith(f"{MODEL}-v1-")
    reason = (moved / "REASON.txt").read_text()
    assert problem in reason and f"invalid after {GRACE_SECONDS:.0f} s" in reason
    assert MODEL_FILE in entries(moved)


@pytest.mark.reliability("fault")
def test_partial_artifact_completed_within_the_grace_period_is_released(home, model, clock):
    folder = truncated(model, "v1")
    first = tick()
    assert first.runs == []

    (folder / MODEL_FILE).write_bytes(skops_bytes(model))  # the copy finished
    clock.now += GRACE_SECONDS / 2
    later = tick(first.cursor)

    assert [r.tags[VERSION_TAG] for r in later.runs] == ["v1"]
    assert later.runs[0].partition_key == verify_artifact(folder).sha256
    assert quarantined(home) == []


def test_quarantined_artifact_never_produces_a_run(home, model, clock):
    folder = truncated(model, "v1")
    first = tick()
    clock.now += GRACE_SECONDS + 1
    late = tick(first.cursor)
    [moved] = quarantined(home)
    assert not folder.exists()

    # Repaired where it lies, and with no digest remembered: still no run.
    (moved / MODEL_FILE).write_bytes(skops_bytes(model))
    verify_artifact(moved)
    clock.now += 10 * GRACE_SECONDS

    assert tick(late.cursor).runs == []
    assert tick(None).runs == []
    assert quarantined(home) == [moved]


# -- clock skew ------------------------------------------------------------------------------
@pytest.mark.reliability("fault")
@pytest.mark.parametrize("offset", [-TEN_YEARS, TEN_YEARS], ids=["past", "future"])
def test_file_times_do_not_change_the_outcome(home, model, clock, offset):
    complete = publish(model, "v1")
    partial = truncated(model, "v2")
    for folder in (complete, partial):
        touch_tree(folder, clock.now + offset)

    first = tick()

    assert [r.tags[VERSION_TAG] for r in first.runs] == ["v1"]
    assert partial.is_dir() and quarantined(home) == []  # new to the sensor: still waiting

    clock.now += GRACE_SECONDS - 1
    assert tick(first.cursor).runs == [] and partial.is_dir()

    clock.now += 2
    tick(first.cursor)
    assert not partial.exists() and len(quarantined(home)) == 1


# -- things that are not artifact folders ----------------------------------------------------
def test_symlink_to_an_artifact_folder_is_quarantined_not_followed(home, model, tmp_path, clock):
    outside = write_artifact(
        model, tmp_path / "elsewhere", name=MODEL, version="v9", features=REQUIRED_COLUMNS
    )
    incoming_dir().mkdir(parents=True, exist_ok=True)
    (incoming_dir() / "credit_default-v9").symlink_to(outside, target_is_directory=True)

    first = tick()

    assert first.runs == [] and "1 quarantined" in first.skip
    assert entries(home / "incoming") == []
    [moved] = quarantined(home)
    assert (moved / "credit_default-v9").is_symlink()  # the link was moved, not its target
    assert "not an artifact folder" in (moved / "REASON.txt").read_text()
    assert not (home / "artifacts").exists()
    assert entries(outside) == [MANIFEST_FILE, MODEL_FILE]  # nothing written through the link
    assert tick(first.cursor).runs == []


def plain_file(folder: Path, tmp_path: Path) -> str:
    (folder / "model.skops").write_bytes(b"not a folder")
    return "model.skops"


def file_symlink(folder: Path, tmp_path: Path) -> str:
    (tmp_path / "secret.txt").write_text("do not touch")
    (folder / "secret").symlink_to(tmp_path / "secret.txt")
    return "secret"


def dangling_symlink(folder: Path, tmp_path: Path) -> str:
    (folder / "gone").symlink_to(tmp_path / "does-not-exist")
    return "gone"


@pytest.mark.parametrize("make", [plain_file, file_symlink, dangling_symlink])
def test_entries_that_are_not_folders_are_quarantined_with_a_reason(
    home, model, tmp_path, clock, make
):
    digest = verify_artifact(publish(model, "v1")).sha256
    name = make(incoming_dir(), tmp_path)

    first = tick()

    assert [r.partition_key for r in first.runs] == [digest]  # the good artifact is not held up
    assert entries(home / "incoming") == [f"{MODEL}-v1"]
    [moved] = quarantined(home)
    assert entries(moved) == sorted(["REASON.txt", name])
    assert "not an artifact folder" in (moved / "REASON.txt").read_text()
    if make is file_symlink:
        assert (tmp_path / "secret.txt").read_text() == "do not touch"


def test_artifact_reusing_a_stored_version_is_refused(home, model, other_model, clock):
    stored = verify_artifact(publish(model, "v1")).sha256
    first = tick()
    run_stores(first.runs[0])
    done = tick(first.cursor)  # v1 stored by its run, then removed from incoming/
    publish(other_model, "v1")  # another model under the same version: a conflict

    later = tick(done.cursor)

    assert later.runs == [] and "1 quarantined" in later.skip
    [moved] = quarantined(home)
    assert "immutable" in (moved / "REASON.txt").read_text()
    assert entries(home / "incoming") == []
    assert verify_artifact(home / "artifacts" / MODEL / "v1").sha256 == stored
    [refused] = registry().events(MODEL, ("refused",))
    assert refused.lineage["source"] == "sensor" and refused.lineage["error"] == "ConflictError"
    assert tick(later.cursor).runs == []


def test_a_pickle_disguised_as_skops_is_refused_at_the_tick(home, model, tmp_path, clock):
    import pickle

    from tests.test_artifacts import Trap, forge

    marker = tmp_path / "pwned"
    folder = forge(publish(model, "v1"), pickle.dumps(Trap(marker)))
    digest = verify_artifact(folder).sha256

    first = tick()

    assert first.runs == [] and "1 quarantined" in first.skip
    assert not marker.exists() and entries(home / "incoming") == []
    assert not (home / "artifacts").exists() and registry().versions(MODEL) == []
    [refused] = registry().events(MODEL, ("refused",))
    assert refused.digest == digest and "never loads pickles" in refused.reason
    [moved] = quarantined(home)
    assert "refused (sensor)" in (moved / "REASON.txt").read_text()


def test_a_cursor_of_an_older_version_still_knows_its_artifacts(home, model, clock):
    """Cursors written before the key named the model hold bare digests: still requested."""
    folder = publish(model, "v1")
    digest = verify_artifact(folder).sha256
    older = json.dumps({"requested": [digest], "first_seen": {}})
    assert tick(cursor=older).runs == []
