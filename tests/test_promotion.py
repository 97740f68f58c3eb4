"""Promotion re-reads every blocking verdict for the exact digest; rollback verifies first."""

import shutil
from pathlib import Path

import pytest

from ml_release.errors import IntegrityError, NotFoundError, PromotionRefused
from ml_release.promotion import GateVerdict, apply_decision, judge_promotion
from ml_release.registry import PREVIOUS, PRODUCTION, Registry
from ml_release.rollback import rollback

DIGEST, OTHER, SPEC = "d" * 64, "e" * 64, "s" * 64
REQUIRED = [("evaluation_features", "null_rate_threshold")]


def _verdict(passed=True, digest=DIGEST, spec=SPEC, at=100.0, verdict=None):
    return GateVerdict(
        "evaluation_features",
        "null_rate_threshold",
        passed,
        verdict or ("pass" if passed else "fail"),
        digest,
        spec,
        at,
        "run-1",
    )


def _judge(*verdicts, rebuilt=50.0):
    history = {REQUIRED[0]: list(verdicts)}
    return judge_promotion(REQUIRED, history, DIGEST, SPEC, {"evaluation_features": rebuilt})


def test_a_passing_verdict_for_this_digest_promotes():
    decision = _judge(_verdict())
    assert decision.promote and decision.problems == []
    assert decision.verdicts[0]["verdict"] == "pass"


def test_missing_verdict_refuses():
    decision = _judge(_verdict(digest=OTHER))  # a verdict, but for another candidate
    assert not decision.promote
    assert "no verdict for candidate dddddddddddd" in decision.problems[0]


def test_failed_verdict_refuses_even_if_an_older_one_passed():
    decision = _judge(_verdict(at=90.0), _verdict(passed=False, at=120.0))
    assert not decision.promote and "fail" in decision.problems[0]


def test_inconclusive_verdict_refuses_when_it_did_not_pass():
    decision = _judge(_verdict(passed=False, verdict="inconclusive"))
    assert decision.problems == ["null_rate_threshold on evaluation_features: inconclusive"]


def test_verdict_under_another_spec_is_stale():
    assert "another release spec" in _judge(_verdict(spec=OTHER)).problems[0]


def test_verdict_older_than_its_data_is_stale():
    assert "rebuilt after the verdict" in _judge(_verdict(at=40.0), rebuilt=50.0).problems[0]


@pytest.fixture()
def registry(tmp_path):
    return Registry(tmp_path / "registry.duckdb")


def test_refused_decision_is_recorded_and_production_stays(registry):
    registry.register("m", "v1", DIGEST, "/x", {})
    with pytest.raises(PromotionRefused) as caught:
        apply_decision(registry, "m", "v1", DIGEST, _judge(), spec_hash=SPEC, lineage={})
    assert caught.value.exit_code == 1
    assert registry.alias("m") is None
    assert registry.events("m", ("blocked",))[0].reason.startswith("null_rate_threshold")


def test_first_promotion_records_no_baseline(registry):
    registry.register("m", "v1", DIGEST, "/x", {})
    event = apply_decision(
        registry, "m", "v1", DIGEST, _judge(_verdict()), spec_hash=SPEC, lineage={"run_id": "r"}
    )
    assert event.reason.startswith("first release: no baseline")
    assert event.lineage == {"run_id": "r", "baseline": "none"}
    assert event.verdicts[0]["gate"] == "null_rate_threshold"


# -- rollback with real artifacts -------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
    from ml_release.demo.generate import generate
    from ml_release.model import build_pipeline

    data = generate(seed=4, n_training=1500, n_evaluation=10, n_serving=10).training
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {}
    )
    return pipeline.fit(data[list(REQUIRED_COLUMNS)], data["defaulted"]), REQUIRED_COLUMNS


@pytest.fixture()
def three_releases(tmp_path, registry, fitted):
    """v1 -> v2 -> v3 promoted in turn, each a real artifact in a store."""
    from ml_release.artifacts.writer import write_artifact
    from ml_release.store import register_stored, store_artifact

    model, columns = fitted
    store = tmp_path / "artifacts"
    previous = None
    for version in ("v1", "v2", "v3"):
        model.set_params(estimator__C=float(int(version[1])))  # a distinct artifact each
        written = write_artifact(
            model, tmp_path / "out", name="m", version=version, features=columns
        )
        manifest, folder = store_artifact(written, store, move=True)
        register_stored(registry, manifest, folder)
        registry.move_production("m", version, expected=previous, event="promoted", step="promote")
        previous = version
    return store


def test_rollback_goes_to_previous_and_a_retry_does_nothing(registry, three_releases):
    outcome = rollback(registry, "m", reason="latency")
    assert (outcome.target, outcome.event.from_version) == ("v2", "v3")
    assert registry.alias("m", PRODUCTION) == "v2" and registry.alias("m", PREVIOUS) == "v3"
    assert rollback(registry, "m", to="v2").already_done
    assert len(registry.events("m", ("rolled_back",))) == 1
    assert registry.problems("m") == []


def test_rollback_to_a_deleted_artifact_refuses_and_names_the_next_known_good(
    registry, three_releases
):
    shutil.rmtree(three_releases / "m" / "v2")
    with pytest.raises(IntegrityError, match=r"Next known-good version: v1"):
        rollback(registry, "m")
    assert registry.alias("m", PRODUCTION) == "v3"
    assert registry.events("m", ("rolled_back",)) == []


def test_rollback_to_a_corrupt_artifact_refuses(registry, three_releases):
    model_file = Path(three_releases / "m" / "v2" / "model.skops")
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        rollback(registry, "m")
    assert registry.alias("m", PRODUCTION) == "v3"


def test_rollback_with_nothing_in_production(registry):
    with pytest.raises(NotFoundError, match="nothing in production"):
        rollback(registry, "m")


@pytest.mark.parametrize(
    "step",
    [
        "rollback:before_alias",
        "rollback:after_alias",
        "rollback:before_commit",
        "rollback:after_commit",
    ],
)
def test_a_rollback_killed_at_any_step_leaves_a_consistent_registry(registry, three_releases, step):
    import os
    import subprocess
    import sys

    from ml_release.faults import CRASH_ENV, CRASH_EXIT_CODE

    code = (
        "import sys; from ml_release.registry import Registry; "
        "from ml_release.rollback import rollback; "
        "rollback(Registry(sys.argv[1]), 'm', reason='crash test')"
    )
    process = subprocess.run(
        [sys.executable, "-c", code, str(registry.path)],
        env={**os.environ, CRASH_ENV: step},
        capture_output=True,
    )
    assert process.returncode == CRASH_EXIT_CODE
    reopened = Registry(registry.path)
    assert reopened.problems("m") == []
    assert reopened.alias("m") == ("v2" if step == "rollback:after_commit" else "v3")
    rollback(reopened, "m", to="v2")  # the retry finishes the job, once
    assert len(reopened.events("m", ("rolled_back",))) == 1


def test_the_rollback_job_in_dagster_moves_production_back(registry, three_releases, tmp_path):
    import dagster as dg

    from ml_release.definitions import build_definitions
    from ml_release.spec import load_spec
    from resources import ModelRegistryResource
    from tests.conftest import spec_dict, write_spec

    spec = load_spec(write_spec(tmp_path, spec_dict(model={"name": "m"})))
    defs = build_definitions(
        spec, {"model_registry": ModelRegistryResource(path=str(registry.path))}
    )
    job = defs.resolve_job_def("rollback")
    config = {"ops": {"rollback_production": {"config": {"to": "v1", "reason": "from the UI"}}}}
    result = job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    event = registry.events("m", ("rolled_back",))[-1]
    assert (event.version, event.from_version, event.reason, event.actor) == (
        "v1",
        "v3",
        "from the UI",
        "dagster",
    )
