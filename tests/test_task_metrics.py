"""Regression and multi-class metrics against scikit-learn, their intervals against a bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import (
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_pinball_loss,
    recall_score,
    root_mean_squared_error,
    top_k_accuracy_score,
)

from ml_release.metrics.calibration import MetricInputError
from ml_release.metrics.multiclass import (
    check_multiclass_inputs,
    class_recall,
    log_losses,
    macro_f1,
    predicted,
    top_k_hits,
)
from ml_release.metrics.regression import regression_metric
from ml_release.stats.tasks import paired_abs_mean_delta, paired_macro_f1_delta, paired_rmse_delta

RNG = np.random.default_rng(3)


def _regression(n=500):
    y = RNG.gamma(3.0, 40.0, n)
    return y, y + RNG.normal(5, 30, n)


@pytest.mark.parametrize("quantile", [0.1, 0.5, 0.9])
def test_regression_metrics_equal_scikit_learn(quantile):
    y, p = _regression()
    ours = {
        m: regression_metric(m, y, p, quantile=quantile).value
        for m in ("mae", "rmse", "pinball_loss", "calibration_in_the_large")
    }
    assert ours["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
    assert ours["rmse"] == pytest.approx(root_mean_squared_error(y, p), rel=1e-12)
    assert ours["pinball_loss"] == pytest.approx(mean_pinball_loss(y, p, alpha=quantile), rel=1e-12)
    assert ours["calibration_in_the_large"] == pytest.approx(abs(y.mean() - p.mean()), rel=1e-12)


def test_regression_metric_is_undefined_below_min_support_and_refuses_non_finite():
    y, p = _regression(20)
    value = regression_metric("mae", y, p, min_support=50)
    assert value.value is None and "below min_support=50" in value.undefined_reason
    p[3] = np.nan
    with pytest.raises(MetricInputError, match="row indices 3"):
        regression_metric("mae", y, p)


def _multiclass(n=800, k=4, ties=False):
    y = RNG.integers(0, k, n)
    logits = RNG.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.2
    if ties:
        logits = np.round(logits)  # many equal probabilities in a row
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


@pytest.mark.parametrize("ties", [False, True])
def test_multiclass_metrics_equal_scikit_learn(ties):
    y, p = _multiclass(ties=ties)
    labels = np.arange(p.shape[1])
    assert log_losses(y, p).mean() == pytest.approx(log_loss(y, p, labels=labels), rel=1e-9)
    pred = predicted(p)
    assert macro_f1(y, p) == pytest.approx(f1_score(y, pred, average="macro"), rel=1e-12)
    recalls = recall_score(y, pred, average=None, labels=labels)
    assert [class_recall(y, p, k) for k in labels] == pytest.approx(list(recalls), rel=1e-12)
    for k in (1, 2, 3):
        expected = top_k_accuracy_score(y, p, k=k, labels=labels)
        assert top_k_hits(y, p, k).mean() == pytest.approx(expected, rel=1e-12)


def test_macro_f1_averages_the_classes_present_and_scores_an_unpredicted_one_zero():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(4)[[0, 0, 0, 1, 2, 3]]  # class 3 never a label; class 1 predicted once
    expected = f1_score(y, predicted(p), labels=[0, 1, 2], average="macro", zero_division=0)
    assert macro_f1(y, p) == pytest.approx(expected)


def test_probability_rows_must_sum_to_one():
    y, p = _multiclass(50)
    p[7] *= 1.3
    with pytest.raises(MetricInputError, match="summing to 1") as refused:
        check_multiclass_inputs(y, p)
    assert refused.value.rows == (7,)


def _row_bootstrap(statistic, n, b=2000, seed=5):
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n, n)) for _ in range(b)])


def test_rmse_delta_method_interval_matches_a_row_bootstrap():
    y, c = _regression(2000)
    b = y + RNG.normal(0, 35, len(y))
    sc, sb = (y - c) ** 2, (y - b) ** 2
    ours = paired_rmse_delta(sc, sb, 0.95)
    draws = _row_bootstrap(lambda i: np.sqrt(sc[i].mean()) - np.sqrt(sb[i].mean()), len(y))
    low, high = np.quantile(draws, [0.025, 0.975])
    assert ours.delta == pytest.approx(
        root_mean_squared_error(y, c) - root_mean_squared_error(y, b)
    )
    assert ours.low == pytest.approx(low, abs=0.1 * (high - low))
    assert ours.high == pytest.approx(high, abs=0.1 * (high - low))


def test_calibration_in_the_large_interval_matches_a_row_bootstrap():
    y, c = _regression(2000)
    b = y + RNG.normal(-2, 35, len(y))
    rc, rb = y - c, y - b
    ours = paired_abs_mean_delta(rc, rb, 0.95, draws=4000, seed=1)
    draws = _row_bootstrap(lambda i: abs(rc[i].mean()) - abs(rb[i].mean()), len(y))
    low, high = np.quantile(draws, [0.025, 0.975])
    assert ours.delta == pytest.approx(abs(rc.mean()) - abs(rb.mean()))
    assert ours.low == pytest.approx(low, abs=0.1 * (high - low))
    assert ours.high == pytest.approx(high, abs=0.1 * (high - low))


def test_macro_f1_cell_bootstrap_matches_a_row_bootstrap():
    y, c = _multiclass(1500, k=5)
    _, b = _multiclass(1500, k=5)
    b[np.arange(len(y)), y] += 0.3  # a second model, informative too
    b /= b.sum(axis=1, keepdims=True)
    pc, pb = predicted(c), predicted(b)
    ours = paired_macro_f1_delta(y, pc, pb, 5, 0.95, n_resamples=2000, seed=2)

    def f1(i, pred):
        return f1_score(y[i], pred[i], labels=np.unique(y), average="macro", zero_division=0)

    draws = _row_bootstrap(lambda i: f1(i, pc) - f1(i, pb), len(y), b=600)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert ours.delta == pytest.approx(macro_f1(y, c) - macro_f1(y, b), abs=1e-12)
    assert ours.low == pytest.approx(low, abs=0.12 * (high - low))
    assert ours.high == pytest.approx(high, abs=0.12 * (high - low))
    assert ours.draws is not None and len(ours.draws) == 2000
