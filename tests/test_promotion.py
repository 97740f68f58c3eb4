"""Promotion re-reads every blocking verdict for the exact digest; rollback verifies first."""

import pytest

from ml_release.errors import PromotionRefused
from ml_release.promotion import GateVerdict, StaleVerdicts, apply_decision, judge_promotion

DIGEST, OTHER, SPEC = "d" * 64, "e" * 64, "s" * 64
REQUIRED = [("evaluation_features", "null_rate_threshold")]


BASE, MOVED = "b" * 64, "c" * 64


def _verdict(passed=True, digest=DIGEST, spec=SPEC, at=100.0, verdict=None, **kw):
    return GateVerdict(
        "evaluation_features",
        "null_rate_threshold",
        passed,
        verdict or ("pass" if passed else "fail"),
        digest,
        spec,
        at,
        "run-1",
        **kw,
    )


def _judge(*verdicts, production=None, data=None):
    history = {REQUIRED[0]: list(verdicts)}
    return judge_promotion(REQUIRED, history, DIGEST, SPEC, production, data)


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
    assert "another release spec" in _judge(_verdict(spec=OTHER)).stale[0]


def test_verdict_on_other_data_is_stale_but_the_same_data_rebuilt_is_not():
    # Data versions are content hashes: a concurrent run reloading the same files changes
    # nothing, other files make the verdict stale.
    assert _judge(_verdict(data_version="v1"), data="v1").promote
    decision = _judge(_verdict(data_version="v1"), data="v2")
    assert decision.is_stale and "other data" in decision.stale[0]


def test_a_verdict_is_about_a_pair_production_must_still_be_its_baseline():
    judged = _verdict(baseline_digest=BASE)
    assert _judge(judged, production=BASE).promote
    moved = _judge(judged, production=MOVED)
    assert moved.is_stale and not moved.promote
    assert "production moved from bbbbbbbbbbbb to cccccccccccc" in moved.stale[0]


def test_first_release_verdicts_are_stale_once_something_is_live():
    assert _judge(_verdict(baseline_digest="none")).promote
    assert _judge(_verdict(baseline_digest="none"), production=BASE).is_stale


def test_verdicts_against_different_baselines_are_stale():
    other = GateVerdict(
        "evaluation_report",
        "roc_auc_vs_baseline",
        True,
        "pass",
        DIGEST,
        SPEC,
        1.0,
        "r",
        baseline_digest=MOVED,
    )
    required = [*REQUIRED, ("evaluation_report", "roc_auc_vs_baseline")]
    history = {REQUIRED[0]: [_verdict(baseline_digest=BASE)], required[1]: [other]}
    decision = judge_promotion(required, history, DIGEST, SPEC, BASE)
    assert decision.is_stale and "different production models" in decision.stale[0]


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


def test_a_stale_decision_is_recorded_and_moves_nothing(registry):
    registry.register("m", "v0", BASE, "m/v0", {})
    registry.register("m", "v1", DIGEST, "m/v1", {})
    registry.register("m", "v2", MOVED, "m/v2", {})
    registry.move_production("m", "v0", expected=None, event="promoted", step="promote")
    decision = _judge(_verdict(baseline_digest=BASE), production=BASE)
    registry.move_production("m", "v2", expected="v0", event="promoted", step="promote")
    with pytest.raises(StaleVerdicts, match="re-run the release") as caught:
        apply_decision(registry, "m", "v1", DIGEST, decision, spec_hash=SPEC, lineage={})
    assert caught.value.exit_code == 3
    assert registry.alias("m") == "v2"
    assert registry.events("m", ("stale",))[0].version == "v1"


def test_promotion_is_a_compare_and_set_from_the_judged_baseline(registry):
    registry.register("m", "v0", BASE, "m/v0", {})
    registry.register("m", "v1", DIGEST, "m/v1", {})
    registry.move_production("m", "v0", expected=None, event="promoted", step="promote")
    decision = _judge(_verdict(baseline_digest=BASE), production=BASE)
    event = apply_decision(registry, "m", "v1", DIGEST, decision, spec_hash=SPEC, lineage={})
    assert (event.version, event.from_version, event.lineage["baseline"]) == ("v1", "v0", "v0")
