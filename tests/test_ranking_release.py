"""The ranking release through the real Dagster job: first release, a good and a bad candidate."""

import dagster as dg
import pandas as pd
import pytest

from ml_release import keys
from ml_release.definitions import build_definitions
from ml_release.demo.ranking.generate import ensure_demo_data
from ml_release.demo.ranking.scenarios import noise_twin, segment_inversion
from ml_release.home import registry_path
from ml_release.jobs import release_in_process
from ml_release.publish import publish_candidate
from ml_release.registry import PRODUCTION, Registry
from ml_release.spec import load_spec
from tests.test_ranking_spec import EXAMPLE


def _verdicts(outcome) -> dict[str, str]:
    return {g["gate"]: g["verdict"] for g in outcome.gates}


@pytest.fixture()
def released(home):
    """Three releases of the example on one instance: trained (first), twin (good), bad."""
    spec = load_spec(EXAMPLE)
    folder = ensure_demo_data(spec)
    assert folder == (home / "demo" / "ranking").resolve()
    assert ensure_demo_data(spec) is None  # already there
    training = pd.read_parquet(folder / "training_snapshot.parquet")
    candidates = {
        "good": publish_candidate(noise_twin(spec, training), spec, version="twin"),
        "bad": publish_candidate(
            segment_inversion(spec, training, "market", "jp"), spec, version="jp-inverted"
        ),
    }
    defs = build_definitions(spec)
    instance = dg.DagsterInstance.ephemeral()
    outcomes = {"first": release_in_process(spec, None, defs, instance)}
    for name, artifact in candidates.items():
        outcomes[name] = release_in_process(spec, artifact, defs, instance)
    return spec, outcomes, Registry(registry_path()), instance


@pytest.mark.slow
def test_good_ranking_candidate_promoted_and_bad_one_blocked(released):
    spec, outcomes, registry, instance = released
    first, good, bad = outcomes["first"], outcomes["good"], outcomes["bad"]
    assert first.exit_code == 0, first.gates
    assert first.decision["decision"] == "promoted"
    assert (
        "random" in next(g for g in first.gates if g["gate"] == "ndcg_at_k_vs_baseline")["summary"]
    )

    assert good.exit_code == 0, [g for g in good.gates if g["verdict"] != "pass"]
    assert set(_verdicts(good).values()) == {"pass"}
    assert good.decision["decision"] == "promoted"

    assert bad.exit_code == 1
    blocked = {g["gate"] for g in bad.blocked}
    assert {"segment_ndcg_at_k_vs_baseline", "ndcg_at_k_vs_baseline"} <= blocked
    segment = next(g for g in bad.gates if g["gate"] == "segment_ndcg_at_k_vs_baseline")
    assert "market=jp" in segment["summary"]
    assert _verdicts(bad)["valid_predictions"] == "pass"
    assert bad.decision == {}  # the blocking checks stopped release_decision
    assert registry.alias(spec.model.name, PRODUCTION) == "twin"

    [event] = [
        e
        for e in instance.all_logs(bad.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.asset_materialization.asset_key == dg.AssetKey(keys.EVALUATION_REPORT)
    ]
    table = event.asset_materialization.metadata["ranking_metrics"].value
    assert "market=jp" in table and "device=mobile" in table and "with_relevant" in table
