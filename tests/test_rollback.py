"""Rollback goes only to known-good versions; an override is explicit and recorded.

On both registry backends (the `registry` fixture in conftest.py): DuckDB and PostgreSQL.
"""

import pickle
import shutil

import pytest

from ml_release.artifacts import file_sha256
from ml_release.errors import ConflictError, IntegrityError, NotFoundError
from ml_release.override import OverrideRefused, override_promotion
from ml_release.registry import PRODUCTION, Registry
from ml_release.rollback import RollbackRefused, next_known_good, rollback
from ml_release.store import register_stored, store_artifact
from tests.fault_support import CRASH_EXIT_CODE, run_crashing

M = "m"


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


def _artifact(tmp_path, fitted, version, c):
    from ml_release.artifacts.writer import write_artifact

    model, columns = fitted
    model.set_params(estimator__C=c)  # a distinct artifact each
    return write_artifact(model, tmp_path / "out", name=M, version=version, features=columns)


@pytest.fixture()
def store(tmp_path):
    return tmp_path / "artifacts"


def _register(registry, store, folder):
    manifest, stored = store_artifact(folder, store, move=True)
    return register_stored(registry, manifest, stored, store)[0]


@pytest.fixture()
def releases(tmp_path, registry, store, fitted):
    """v1 -> v2 -> v3 promoted by their gates, in turn; v4 registered and blocked."""
    previous = None
    for i, version in enumerate(("v1", "v2", "v3", "v4"), 1):
        _register(registry, store, _artifact(tmp_path, fitted, version, float(i)))
        if version == "v4":
            registry.record(
                M,
                "blocked",
                version="v4",
                reason="blocked by roc_auc_vs_baseline",
                verdicts=[{"gate": "roc_auc_vs_baseline", "dataset": "e", "passed": False}],
            )
            continue
        registry.move_production(M, version, expected=previous, event="promoted", step="promote")
        previous = version
    return store


def test_rollback_undoes_the_last_promotion_and_a_retry_does_nothing(registry, releases):
    outcome = rollback(registry, releases, M, reason="latency")
    assert (outcome.target, outcome.event.from_version) == ("v2", "v3")
    again = rollback(registry, releases, M, reason="latency")  # the runbook's safe retry
    assert again.already_done and "already v2, rolled back from v3" in again.note
    assert registry.alias(M, PRODUCTION) == "v2"
    assert len(registry.events(M, ("rolled_back",))) == 1
    assert registry.problems(M) == []


def test_the_version_rolled_away_from_is_never_the_next_target(registry, releases):
    rollback(registry, releases, M, reason="incident")
    assert next_known_good(registry, releases, M) == "v1"  # not v3
    with pytest.raises(RollbackRefused, match=r"v3 was rolled away from .* version: v1"):
        rollback(registry, releases, M, to="v3")
    assert rollback(registry, releases, M, to="v1").target == "v1"  # further back: explicit


def test_rollback_to_a_blocked_version_is_refused_naming_a_known_good_one(registry, releases):
    before = registry.events(M)
    with pytest.raises(RollbackRefused) as caught:
        rollback(registry, releases, M, to="v4")
    message = str(caught.value)
    assert "v4 was blocked by its gates" in message and "Next known-good version: v2" in message
    assert caught.value.exit_code == 2
    assert registry.alias(M) == "v3" and registry.events(M) == before


def test_an_override_restores_any_verified_version_and_is_recorded(registry, releases):
    with pytest.raises(RollbackRefused, match="--reason"):
        rollback(registry, releases, M, to="v4", override=True)
    event = rollback(registry, releases, M, to="v4", override=True, reason="hotfix").event
    assert event.lineage["override"] is True
    assert "blocked by its gates" in event.lineage["not_known_good"]
    assert registry.alias(M) == "v4"
    # v4 entered production by an override rollback, not by its gates: still not known-good.
    assert next_known_good(registry, releases, M) == "v2"


def test_an_unsafe_artifact_is_never_restored_even_with_override(tmp_path, registry, releases):
    folder = releases / M / "v5"
    shutil.copytree(releases / M / "v1", folder)
    (folder / "model.skops").write_bytes(pickle.dumps({"not": "a model"}))
    manifest = (folder / "manifest.json").read_text()
    digest = file_sha256(folder / "model.skops")
    size = (folder / "model.skops").stat().st_size
    import json

    data = json.loads(manifest) | {"version": "v5", "sha256": digest, "size_bytes": size}
    (folder / "manifest.json").write_text(json.dumps(data))
    registry.register(M, "v5", digest, f"{M}/v5", data)  # as an old registry could hold it
    with pytest.raises(RollbackRefused, match="never promoted"):
        rollback(registry, releases, M, to="v5")
    with pytest.raises(IntegrityError, match="not a skops file") as caught:
        rollback(registry, releases, M, to="v5", override=True, reason="desperate")
    assert caught.value.exit_code == 4
    assert registry.alias(M) == "v3"


@pytest.mark.reliability("fault")
def test_a_deleted_or_corrupt_target_is_skipped_for_the_next_known_good(registry, releases):
    shutil.rmtree(releases / M / "v2")
    with pytest.raises(IntegrityError, match=r"Next known-good version: v1"):
        rollback(registry, releases, M, to="v2")
    model_file = releases / M / "v1" / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    assert next_known_good(registry, releases, M) is None
    with pytest.raises(NotFoundError, match="no known-good version"):
        rollback(registry, releases, M)
    assert registry.alias(M) == "v3"


def test_a_folder_swapped_for_another_artifact_is_refused(registry, releases):
    # The folder's own manifest matches its bytes; the registry's digest does not.
    shutil.rmtree(releases / M / "v2")
    shutil.copytree(releases / M / "v1", releases / M / "v2")
    with pytest.raises(IntegrityError, match="replaced after registration"):
        rollback(registry, releases, M, to="v2")


def test_a_folder_replaced_by_a_symlink_out_of_the_store_is_refused(tmp_path, registry, releases):
    outside = tmp_path / "elsewhere"
    shutil.move(releases / M / "v2", outside)
    (releases / M / "v2").symlink_to(outside, target_is_directory=True)
    with pytest.raises(IntegrityError, match="leaves the artifact store"):
        rollback(registry, releases, M, to="v2")


def test_rollback_with_nothing_in_production(registry, store):
    with pytest.raises(NotFoundError, match="nothing in production"):
        rollback(registry, store, M)


def test_an_override_promotes_a_gated_candidate_with_its_failed_gates(registry, releases):
    with pytest.raises(OverrideRefused, match="--approver"):
        override_promotion(registry, releases, M, "v4", approver="", reason="x")
    event = override_promotion(
        registry, releases, M, "v4", approver="a.lead", reason="metric redefined on purpose"
    )
    assert event.event == "overridden" and event.from_version == "v3"
    assert event.lineage["failed_gates"] == ["roc_auc_vs_baseline (e)"]
    assert "approved by a.lead" in event.reason
    assert next_known_good(registry, releases, M) == "v3"  # v4 is live; v3 is known-good


def test_an_override_needs_a_gated_verifiable_candidate(tmp_path, registry, releases, fitted):
    _register(registry, releases, _artifact(tmp_path, fitted, "v6", 6.0))
    with pytest.raises(OverrideRefused, match="never been gated"):
        override_promotion(registry, releases, M, "v6", approver="a", reason="b")
    shutil.rmtree(releases / M / "v4")
    with pytest.raises(IntegrityError):
        override_promotion(registry, releases, M, "v4", approver="a", reason="b")
    assert registry.alias(M) == "v3"


@pytest.mark.reliability("fault")
def test_an_override_loses_a_race_like_a_promotion(registry, releases):
    registry.move_production(M, "v1", expected="v3", event="rolled_back", step="rollback")
    with pytest.raises(ConflictError):
        registry.move_production(M, "v4", expected="v3", event="overridden", step="override")


STEPS = ["before_alias", "after_alias", "before_commit", "after_commit"]
ROLLBACK = """
from pathlib import Path
from ml_release.registry import Registry
from ml_release.rollback import rollback
rollback(Registry(argv[0]), Path(argv[1]), "m", reason="crash test")
"""
OVERRIDE = """
from pathlib import Path
from ml_release.override import override_promotion
from ml_release.registry import Registry
override_promotion(Registry(argv[0]), Path(argv[1]), "m", "v4", approver="a", reason="b")
"""


@pytest.mark.reliability("fault")
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    ("kind", "code", "target"), [("rollback", ROLLBACK, "v2"), ("override", OVERRIDE, "v4")]
)
def test_killed_at_any_step_then_retried_exactly_once(
    registry, registry_location, releases, step, kind, code, target
):
    at = registry_location
    assert run_crashing(f"{kind}:{step}", code, at, releases) == CRASH_EXIT_CODE
    reopened = Registry(at)
    assert reopened.problems(M) == []
    assert reopened.alias(M) == (target if step == "after_commit" else "v3")
    assert run_crashing("", code, at, releases) == 0  # the retry finishes or is done
    kinds = {"rollback": "rolled_back", "override": "overridden"}
    assert [e.version for e in reopened.events(M, (kinds[kind],))] == [target]
    assert reopened.alias(M) == target and reopened.problems(M) == []
