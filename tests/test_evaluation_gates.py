"""Model-quality gates: each with a case that must pass and one that must not."""

import numpy as np
import pytest

from ml_release.evaluation.data import EvalSet
from ml_release.evaluation.run import judge
from ml_release.gates.result import Verdict
from ml_release.spec import load_spec
from tests.conftest import spec_dict, write_spec

N = 6000


def _scores(rng, y, quality):
    """Scores whose AUC grows with `quality` (binormal)."""
    return 1 / (1 + np.exp(-(quality * (y - 0.5) * 2 + rng.normal(0, 1, len(y)) - 1.2)))


def _set(
    candidate_quality=1.0,
    baseline_quality=1.0,
    *,
    segment_hit=None,
    trivial=False,
    seed=0,
    corr=True,
):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=N) < 0.25).astype(int)
    region = rng.choice(["north", "south", "east"], N)
    shared = rng.normal(0, 1, N)
    base = 1 / (1 + np.exp(-(baseline_quality * (y - 0.5) * 2 + shared - 1.2)))
    noise = rng.normal(0, 0.15, N) if corr else rng.normal(0, 1, N)
    cand = 1 / (1 + np.exp(-(candidate_quality * (y - 0.5) * 2 + shared + noise - 1.2)))
    if segment_hit is not None:  # the candidate is noise in one segment
        rows = region == segment_hit
        cand[rows] = rng.uniform(size=rows.sum())
    if trivial:
        base = np.full(N, y.mean())
    return {
        "holdout": EvalSet(
            "holdout",
            np.arange(N).astype(str),
            y,
            cand,
            base,
            {"region": region, "channel": rng.choice(["web", "app"], N)},
            trivial,
        )
    }


def _gate(tmp_path, entry, segments=("region", "channel")):
    data = spec_dict(gates=[entry], allow_ungated=True)  # one gate judged on its own
    data["data"]["segments"] = list(segments)
    spec = load_spec(write_spec(tmp_path, data))
    return spec.gates[0], spec


def _judge(tmp_path, entry, sets):
    gate, spec = _gate(tmp_path, entry, list(sets["holdout"].segments))
    return judge(gate, sets, spec)


AUC = {"name": "roc_auc_vs_baseline", "max_drop": 0.01}


def test_identical_up_to_noise_passes(tmp_path):
    assert _judge(tmp_path, AUC, _set()).verdict is Verdict.PASS


def test_clearly_worse_fails_with_the_interval_in_the_summary(tmp_path):
    result = _judge(tmp_path, AUC, _set(candidate_quality=0.6))
    assert result.verdict is Verdict.FAIL
    assert result.interval[1] < -0.01 and "[" in result.summary


def test_a_drop_near_the_margin_is_inconclusive(tmp_path):
    # delta about -0.013 with interval about [-0.015, -0.011]: a margin inside it.
    result = _judge(tmp_path, {**AUC, "max_drop": 0.013}, _set(candidate_quality=0.95))
    assert result.verdict is Verdict.INCONCLUSIVE
    low, high = result.interval
    assert low < -0.013 < high


def test_lower_is_better_metrics_are_mirrored(tmp_path):
    entry = {"name": "log_loss_vs_baseline", "max_relative_drop": 0.01}
    assert _judge(tmp_path, entry, _set(candidate_quality=1.6)).verdict is Verdict.PASS
    assert _judge(tmp_path, entry, _set(candidate_quality=0.5)).verdict is Verdict.FAIL


def test_a_broken_segment_fails_even_when_the_global_change_is_small(tmp_path):
    entry = {"name": "segment_roc_auc_vs_baseline", "max_drop": 0.02, "min_support": 300}
    sets = _set(segment_hit="south")
    result = _judge(tmp_path, entry, sets)
    assert result.verdict is Verdict.FAIL
    verdicts = {(r["column"], r["value"]): r["verdict"] for r in result.rows}
    assert verdicts[("region", "south")] == "fail"
    assert verdicts[("region", "north")] == verdicts[("region", "east")] == "pass"
    assert "segment region=south" in result.summary


def test_noise_alone_does_not_fail_any_segment(tmp_path):
    entry = {"name": "segment_roc_auc_vs_baseline", "max_drop": 0.02, "min_support": 300}
    for seed in range(3):
        result = _judge(tmp_path, entry, _set(seed=seed))
        assert result.verdict is not Verdict.FAIL


@pytest.mark.reliability("input")
def test_small_segments_listed_but_not_judged_with_warn(tmp_path):
    entry = {
        "name": "segment_roc_auc_vs_baseline",
        "max_drop": 0.02,
        "min_support": 7000,
        "small_segments": "warn",
    }
    result = _judge(tmp_path, entry, _set())
    assert all(r["status"] == "not judged" for r in result.rows)
    assert result.verdict is Verdict.INCONCLUSIVE  # nothing judged is never a pass


def _small_stores(hit: bool, seed: int = 0):
    """One large store of 5,000 rows and 10 stores of 100; with `hit`, the candidate is noise
    in every small store (a regression no single small store can show)."""
    sets = _set(seed=seed)
    data = sets["holdout"]
    stores = np.array(["big"] * 5000 + [f"s{i}" for i in range(10) for _ in range(100)])
    candidate = data.candidate.copy()
    if hit:
        small = stores != "big"
        candidate[small] = np.random.default_rng(seed).uniform(size=small.sum())
    segments = {**data.segments, "store": stores}
    return {"holdout": EvalSet("holdout", data.row_ids, data.y, candidate, data.baseline,
                               segments, False)}  # fmt: skip


@pytest.mark.parametrize("policy", ["pool", "block", "warn"])
def test_a_regression_confined_to_small_segments(tmp_path, policy):
    entry = {
        "name": "segment_roc_auc_vs_baseline",
        "max_drop": 0.02,
        "min_support": 300,
        "segments": ["store"],
        **({"small_segments": policy} if policy != "pool" else {}),  # pool is the default
    }
    healthy = _judge(tmp_path, entry, _small_stores(hit=False))
    hit = _judge(tmp_path, entry, _small_stores(hit=True))
    statuses = {r["value"]: r["status"] for r in hit.rows}
    if policy == "pool":
        pooled = next(r for r in hit.rows if r["value"].startswith("(small segments"))
        assert pooled["n"] == 1000 and pooled["verdict"] == "fail"
        assert hit.verdict is Verdict.FAIL and "store=(small segments: s0," in hit.summary
        assert all(statuses[f"s{i}"] == "pooled" for i in range(10))
        assert hit.support == {"segments": 2, "not_judged": 0, "pooled": 10}
        assert healthy.verdict is Verdict.PASS  # healthy small stores pass together
    elif policy == "block":
        assert hit.verdict is healthy.verdict is Verdict.INCONCLUSIVE  # never a silent pass
        assert "small_segments: block" in hit.summary
    else:  # warn: the old behaviour, listed and not judged; the regression goes through
        assert hit.verdict is Verdict.PASS and "10 segments below min_support" in hit.summary
        assert all(statuses[f"s{i}"] == "not judged" for i in range(10))


@pytest.mark.reliability("input")
def test_a_pool_still_too_small_is_listed_not_judged(tmp_path):
    entry = {
        "name": "segment_roc_auc_vs_baseline",
        "max_drop": 0.02,
        "min_support": 1500,
        "segments": ["store"],
    }
    result = _judge(tmp_path, entry, _small_stores(hit=True))  # 1,000 rows even pooled
    small = [r for r in result.rows if r["value"].startswith("s")]
    assert len(small) == 10 and all(r["status"] == "not judged" for r in small)
    assert all("even pooled" in r["reason"] for r in small)
    assert "(even pooled)" in result.summary


def test_without_production_the_candidate_must_beat_a_trivial_model(tmp_path):
    assert _judge(tmp_path, AUC, _set(trivial=True)).verdict is Verdict.PASS
    useless = _set(candidate_quality=0.0, trivial=True)
    assert _judge(tmp_path, AUC, useless).verdict is not Verdict.PASS


def test_floor(tmp_path):
    assert _judge(tmp_path, {"name": "min_roc_auc", "threshold": 0.6}, _set()).verdict is (
        Verdict.PASS
    )
    assert _judge(tmp_path, {"name": "min_roc_auc", "threshold": 0.95}, _set()).verdict is (
        Verdict.FAIL
    )


def test_calibration_fails_on_a_miscalibrated_candidate(tmp_path):
    entry = {"name": "calibration", "max_ece": 0.2, "max_increase": 0.01}
    sets = _set()
    assert _judge(tmp_path, entry, sets).verdict is not Verdict.FAIL
    sets["holdout"].candidate = np.clip(sets["holdout"].candidate * 1.8, 0, 1)
    assert _judge(tmp_path, entry, sets).verdict is Verdict.FAIL


@pytest.mark.reliability("input")
def test_invalid_scores_fail_validity_with_row_ids_and_are_never_a_metric(tmp_path):
    sets = _set()
    sets["holdout"].candidate[[3, 17]] = [np.nan, 1.5]
    validity = _judge(tmp_path, {"name": "valid_predictions"}, sets)
    assert validity.verdict is Verdict.FAIL
    assert [e["row_id"] for e in validity.examples] == ["3", "17"]
    assert _judge(tmp_path, AUC, sets).verdict is Verdict.INCONCLUSIVE


@pytest.mark.reliability("input")
@pytest.mark.parametrize(
    "bad",
    [
        {"name": "roc_auc_vs_baseline"},
        {"name": "roc_auc_vs_baseline", "max_drop": 0.1, "max_relative_drop": 0.1},
        {"name": "segment_roc_auc_vs_baseline", "max_drop": 0.1, "segments": ["regon"]},
    ],
)
def test_bad_gate_parameters_are_spec_errors(tmp_path, bad):
    from ml_release.errors import SpecError

    with pytest.raises(SpecError, match="gates"):
        _gate(tmp_path, bad)


def test_gate_directions_match_the_metrics():
    from ml_release.gates.model_quality import METRIC_DIRECTIONS
    from ml_release.metrics import METRICS

    assert {m: METRICS[m].greater_is_better for m in METRIC_DIRECTIONS} == METRIC_DIRECTIONS


def test_gate_results_survive_storage(tmp_path):
    from ml_release.gates.result import GateResult

    result = _judge(
        tmp_path,
        {"name": "segment_roc_auc_vs_baseline", "max_drop": 0.02},
        _set(segment_hit="east"),
    )
    again = GateResult.from_dict(result.to_dict())
    assert again.verdict is result.verdict and again.rows == result.rows
    assert again.interval == result.interval


def test_evidence_keeps_one_type_per_key_for_plots_over_time(tmp_path):
    import math

    from checks.metadata import evidence_metadata
    from ml_release.gates.result import GateResult

    judged = _judge(tmp_path, AUC, _set()).evidence()
    empty = GateResult("g", "t", Verdict.INCONCLUSIVE, "nothing", "n/a").evidence()
    numbers = ("observed", "baseline", "delta", "threshold", "interval_low", "interval_high")
    for fields in (judged, empty):
        assert all(type(fields[k]) is float for k in numbers), fields  # never text
    assert judged["interval_low"] < judged["interval_high"] and "interval" not in judged
    assert all(math.isnan(empty[k]) for k in numbers)
    stored = GateResult.from_dict(GateResult("g", "t", Verdict.PASS, "s", "m", observed=math.inf)
                                  .to_dict())  # fmt: skip
    assert math.isnan(stored.evidence()["observed"])

    plotted = GateResult("g", "t", Verdict.FAIL, "s", "m", plot_png=b"\x89PNG fake")
    metadata = evidence_metadata(plotted, True, ("v", "d"), tmp_path / "plots")
    assert "plot" not in metadata  # no base64 in the event log
    assert (tmp_path / "plots" / "t__g.png").read_bytes() == b"\x89PNG fake"
    assert metadata["plot_path"].path == str(tmp_path / "plots" / "t__g.png")


def test_bootstrap_depth_follows_the_bonferroni_confidence(tmp_path):
    entry = {"name": "segment_recall_vs_baseline", "max_drop": 0.05, "min_support": 300}
    result = _judge(tmp_path, entry, _set())  # 5 segments: 99 % per interval
    assert result.draws == 4000  # 20 draws beyond each end of every interval
    for row in result.rows:
        assert row["draws"] == 4000
    assert result.evidence()["draws"] == 4000
    assert _judge(tmp_path, {**AUC}, _set()).evidence().get("draws") is None  # DeLong: exact
