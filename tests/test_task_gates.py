"""Every regression and multi-class gate: a case that must pass and one that must fail."""

import numpy as np
import pytest

from ml_release.evaluation.task_data import MulticlassSet, RegressionSet
from ml_release.evaluation.task_gates import judge_task_gate
from ml_release.evaluation.task_reports import _multiclass, _regression, valid_predictions
from ml_release.spec import EvaluationSpec, GateSpec

SETTINGS = EvaluationSpec(bootstrap_resamples=400)
N = 4000
REGRESSION = ("mae", "rmse", "pinball_loss", "calibration_in_the_large")


def gate(name, **params):
    return GateSpec.model_validate({"name": name, **params})


def _segments(n):
    return {"region": np.where(np.arange(n) % 4 == 0, "south", "north")}


def regression_set(kind: str, trivial=False, seed=0) -> RegressionSet:
    """`twin`: candidate as good as the baseline; `worse`: worse everywhere; `segment`: worse
    in region=south only; `biased`: shifted by +25."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(3.0, 40.0, N)
    baseline = y + rng.normal(0, 30, N)
    candidate = baseline + rng.normal(0, 1, N)
    south = _segments(N)["region"] == "south"
    if kind == "worse":
        candidate = y + rng.normal(0, 60, N)
    elif kind == "segment":
        candidate = np.where(south, y + rng.normal(0, 90, N), candidate)
    elif kind == "biased":
        candidate = candidate + 25
    return RegressionSet(
        "holdout", np.arange(N).astype(str), y, candidate, baseline, _segments(N), trivial
    )


def judge_regression(name, data, **params):
    spec = gate(name, **params)
    return judge_task_gate(spec, _regression, data, SETTINGS, ["region"], "NaN or infinite")


@pytest.mark.parametrize("metric", REGRESSION)
def test_regression_vs_baseline_passes_a_twin_and_fails_a_worse_model(metric):
    bad = "biased" if metric == "calibration_in_the_large" else "worse"
    params = {"max_drop": 3.0} if metric == "calibration_in_the_large" else {}
    params = params or {"max_relative_drop": 0.05}
    name = f"{metric}_vs_baseline"
    assert judge_regression(name, regression_set("twin"), **params).verdict.value == "pass"
    failed = judge_regression(name, regression_set(bad), **params)
    assert failed.verdict.value == "fail", failed.summary
    assert failed.interval[0] > 0  # lower is better: the whole interval is a rise


@pytest.mark.parametrize("metric", REGRESSION[:3])
def test_regression_segment_gate_names_the_segment(metric):
    name = f"segment_{metric}_vs_baseline"
    passed = judge_regression(name, regression_set("twin"), max_relative_drop=0.1)
    assert passed.verdict.value == "pass", passed.summary
    failed = judge_regression(name, regression_set("segment"), max_relative_drop=0.1)
    assert failed.verdict.value == "fail"
    assert "region=south" in failed.summary and "region=north" not in failed.summary


@pytest.mark.parametrize("metric", REGRESSION)
def test_regression_ceiling_applies_with_or_without_production(metric):
    data = regression_set("biased", trivial=True)
    value = judge_regression(f"max_{metric}", data, threshold=1e6).observed
    assert judge_regression(f"max_{metric}", data, threshold=value * 1.01).verdict.value == "pass"
    assert judge_regression(f"max_{metric}", data, threshold=value * 0.99).verdict.value == "fail"


def test_first_regression_release_must_beat_the_training_mean():
    data = regression_set("twin", trivial=True)
    mean = np.full(N, data.y.mean())
    good = RegressionSet("holdout", data.row_ids, data.y, data.candidate, mean, data.segments, True)
    useless = RegressionSet(
        "holdout",
        data.row_ids,
        data.y,
        mean + np.random.default_rng(1).normal(0, 60, N),
        mean,
        data.segments,
        True,
    )
    passed = judge_regression("mae_vs_baseline", good, max_relative_drop=0.05)
    assert passed.verdict.value == "pass" and "training-mean" in passed.summary
    assert (
        judge_regression("mae_vs_baseline", useless, max_relative_drop=0.05).verdict.value == "fail"
    )
    # Calibration-in-the-large against the mean does not apply; segments neither.
    for name in ("calibration_in_the_large_vs_baseline", "segment_mae_vs_baseline"):
        result = judge_regression(name, good, max_drop=1.0)
        assert result.verdict.value == "pass" and "no production" in result.summary


def test_non_finite_predictions_fail_valid_predictions_and_make_the_others_inconclusive():
    data = regression_set("twin")
    data.candidate[[5, 9]] = [np.nan, np.inf]
    result = valid_predictions(gate("valid_predictions"), {"holdout": data}, "NaN or infinite")
    assert result.verdict.value == "fail" and "5" in result.summary and "9" in result.summary
    clean = valid_predictions(
        gate("valid_predictions"), {"holdout": regression_set("twin")}, "NaN or infinite"
    )
    assert clean.verdict.value == "pass"
    other = judge_regression("mae_vs_baseline", data, max_relative_drop=0.05)
    assert other.verdict.value == "inconclusive"


CLASSES = ["a", "b", "c", "d"]


def multiclass_set(kind: str, trivial=False, seed=0) -> MulticlassSet:
    """`twin`, `worse` (everywhere), `segment` (region=south only), `class` (class c only)."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    y = rng.integers(0, k, N)

    def model(strength, noise_seed):
        logits = np.random.default_rng(noise_seed).normal(0, 1, (N, k))
        logits[np.arange(N), y] += strength
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    baseline = model(2.5, 1)
    candidate = 0.98 * baseline + 0.02 * model(2.5, 2)
    south = _segments(N)["region"] == "south"
    if kind == "worse":
        candidate = model(0.8, 3)
    elif kind == "segment":
        candidate = np.where(south[:, None], model(0.0, 3), candidate)
    elif kind == "class":
        confused = y == 2
        candidate = np.where(confused[:, None], np.roll(candidate, 1, axis=1), candidate)
    return MulticlassSet(
        "holdout", np.arange(N).astype(str), y, candidate, baseline, _segments(N), trivial, CLASSES
    )


def judge_multiclass(name, data, **params):
    spec = gate(name, **params)
    return judge_task_gate(spec, _multiclass, data, SETTINGS, ["region"], "not probabilities")


MULTICLASS = {
    "log_loss": {"max_relative_drop": 0.05},
    "macro_f1": {"max_drop": 0.02},
    "top_k_accuracy": {"max_drop": 0.02, "k": 2},
}


@pytest.mark.parametrize("metric", list(MULTICLASS))
def test_multiclass_vs_baseline_passes_a_twin_and_fails_a_worse_model(metric):
    name, params = f"{metric}_vs_baseline", MULTICLASS[metric]
    passed = judge_multiclass(name, multiclass_set("twin"), **params)
    assert passed.verdict.value == "pass", passed.summary
    failed = judge_multiclass(name, multiclass_set("worse"), **params)
    assert failed.verdict.value == "fail", failed.summary


@pytest.mark.parametrize("metric", list(MULTICLASS))
def test_multiclass_segment_gate_names_the_segment(metric):
    name, params = f"segment_{metric}_vs_baseline", {**MULTICLASS[metric], "min_support": 300}
    assert judge_multiclass(name, multiclass_set("twin"), **params).verdict.value == "pass"
    failed = judge_multiclass(name, multiclass_set("segment"), **params)
    assert failed.verdict.value == "fail" and "region=south" in failed.summary


def test_class_recall_gates_name_the_class():
    passed = judge_multiclass("class_recall_vs_baseline", multiclass_set("twin"), max_drop=0.05)
    assert passed.verdict.value == "pass", passed.summary
    failed = judge_multiclass("class_recall_vs_baseline", multiclass_set("class"), max_drop=0.05)
    assert failed.verdict.value == "fail" and "class=c" in failed.summary
    assert "class=a" not in failed.summary
    per_segment = judge_multiclass(
        "segment_class_recall_vs_baseline", multiclass_set("class"), max_drop=0.05, min_support=100
    )
    assert per_segment.verdict.value == "fail" and "south, c" in per_segment.summary
    floor = judge_multiclass("min_class_recall", multiclass_set("class"), threshold=0.5)
    assert floor.verdict.value == "fail" and floor.summary.startswith("c:")
    twin_floor = judge_multiclass("min_class_recall", multiclass_set("twin"), threshold=0.5)
    assert twin_floor.verdict.value == "pass"


@pytest.mark.parametrize(("metric", "bound"), [("macro_f1", "min"), ("top_k_accuracy", "min")])
def test_multiclass_floors(metric, bound):
    data = multiclass_set("twin", trivial=True)
    value = judge_multiclass(f"{bound}_{metric}", data, threshold=0.0).observed
    assert (
        judge_multiclass(f"{bound}_{metric}", data, threshold=value - 0.01).verdict.value == "pass"
    )
    assert (
        judge_multiclass(f"{bound}_{metric}", data, threshold=value + 0.01).verdict.value == "fail"
    )


def test_first_multiclass_release_must_beat_the_class_shares():
    data = multiclass_set("twin")
    shares = np.tile(np.bincount(data.y) / N, (N, 1))
    good = MulticlassSet(
        "holdout", data.row_ids, data.y, data.candidate, shares, data.segments, True, CLASSES
    )
    useless = MulticlassSet(
        "holdout",
        data.row_ids,
        data.y,
        np.roll(data.candidate, 1, axis=1),  # confidently wrong
        shares,
        data.segments,
        True,
        CLASSES,
    )
    passed = judge_multiclass("log_loss_vs_baseline", good, max_relative_drop=0.05)
    assert passed.verdict.value == "pass" and "class-share" in passed.summary
    failed = judge_multiclass("log_loss_vs_baseline", useless, max_relative_drop=0.05)
    assert failed.verdict.value == "fail"
    recall = judge_multiclass("class_recall_vs_baseline", good, max_drop=0.05)
    assert recall.verdict.value == "pass" and "no production" in recall.summary
