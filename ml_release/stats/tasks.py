"""Paired comparisons for the regression and multi-class metrics that are not plain means.

Means of per-row values (MAE, pinball loss, log loss, top-k accuracy, per-class recall) use
`paired_mean_delta`, the exact paired t method. The rest:

- `paired_rmse_delta`: RMSE is the square root of a mean; the delta method linearizes
  `sqrt(a) - sqrt(b)` around the two mean squared errors, so the interval is the paired t
  interval of the per-row values `e_c^2 / (2 RMSE_c) - e_b^2 / (2 RMSE_b)`.
- `paired_abs_mean_delta`: calibration-in-the-large, `|mean r_c| - |mean r_b|` for residuals
  `r`. The two means are jointly normal (central limit theorem) with the sample covariance of
  the paired residuals; `B` seeded draws of that normal give the percentile interval of the
  difference of absolute values, which has no useful derivative at 0. O(n) plus O(B).
- `paired_macro_f1_delta`: a paired bootstrap of macro-F1 that resamples the counts of the
  (label, candidate class, baseline class) cells from the multinomial, which is exactly the
  distribution of those counts under the row bootstrap, as for the binary threshold metrics
  (`paired_bootstrap_delta`'s cell path). O(n) plus O(B x cells x K).
Formulas and references: docs/statistics.md.
"""

import math
from dataclasses import replace

import numpy as np

from ml_release.metrics.multiclass import f1_from_counts
from ml_release.stats.paired import (
    MAX_UNDEFINED_SHARE,
    Comparison,
    _check_confidence,
    _from_standard_error,
    _resample_cells,
    _undefined,
    resamples_for,
)


def _from_draws(point: Comparison, draws: np.ndarray) -> Comparison:
    """Percentile interval and two-sided p-value of delta from its draws."""
    finite = draws[np.isfinite(draws)]
    if draws.size - finite.size > MAX_UNDEFINED_SHARE * draws.size:
        reason = f"{point.metric} is undefined on {draws.size - finite.size} of {draws.size} draws"
        return replace(point, undefined_reason=reason)
    alpha = 1.0 - point.confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    tail = min(np.sum(finite <= 0), np.sum(finite >= 0))
    p = min(1.0, 2 * (1 + float(tail)) / (finite.size + 1))
    return replace(point, low=float(low), high=float(high), p_value=p, draws=draws)


def paired_rmse_delta(
    squared_candidate: np.ndarray, squared_baseline: np.ndarray, confidence: float = 0.95
) -> Comparison:
    """RMSE_c - RMSE_b on the same rows, delta-method paired t interval.

    Args:
        squared_candidate: Candidate squared error per row.
        squared_baseline: Baseline squared error on the same rows.
        confidence: Two-sided coverage of the interval.
    """
    confidence = _check_confidence(confidence)
    c = np.asarray(squared_candidate, dtype=float)
    b = np.asarray(squared_baseline, dtype=float)
    rmse_c, rmse_b = math.sqrt(c.mean()) if c.size else 0.0, math.sqrt(b.mean()) if b.size else 0.0
    if c.size < 2 or rmse_c == 0 or rmse_b == 0:
        reason = f"RMSE needs 2 rows and a nonzero error for both models (n={c.size})"
        return _undefined("rmse", "delta_paired_t", c.size, confidence, reason)
    # The per-row contributions of the linearization: their mean difference is the delta to
    # first order, and their standard error is the delta method's.
    linear = c / (2 * rmse_c) - b / (2 * rmse_b)
    se = float(np.std(linear, ddof=1)) / math.sqrt(c.size)
    return _from_standard_error(
        "rmse", rmse_c, rmse_b, se, confidence, "delta_paired_t", c.size, df=c.size - 1
    )


def paired_abs_mean_delta(
    residual_candidate: np.ndarray,
    residual_baseline: np.ndarray,
    confidence: float = 0.95,
    draws: int = 2000,
    seed: int = 0,
    metric: str = "calibration_in_the_large",
) -> Comparison:
    """|mean r_c| - |mean r_b| on the same rows, from normal draws of the two means."""
    confidence = _check_confidence(confidence)
    draws = resamples_for(confidence, draws)  # >= 20 draws in each tail
    c = np.asarray(residual_candidate, dtype=float)
    b = np.asarray(residual_baseline, dtype=float)
    n = c.size
    method = f"clt_draws(B={draws})"
    if n < 2:
        return _undefined(metric, method, n, confidence, f"needs at least 2 rows; got {n}")
    means = np.array([c.mean(), b.mean()])
    covariance = np.cov(np.vstack([c, b])) / n
    sampled = np.random.default_rng(seed).multivariate_normal(means, covariance, size=draws)
    deltas = np.abs(sampled[:, 0]) - np.abs(sampled[:, 1])
    cand, base = abs(float(means[0])), abs(float(means[1]))
    nan = math.nan
    point = Comparison(metric, cand, base, cand - base, nan, nan, confidence, method, n)
    return _from_draws(point, deltas)


def paired_macro_f1_delta(
    y: np.ndarray,
    predicted_candidate: np.ndarray,
    predicted_baseline: np.ndarray,
    classes: int,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Macro-F1_c - macro-F1_b on the same rows: the cell bootstrap (module docstring).

    The classes averaged are those present among `y`'s labels, in every resample alike.
    """
    confidence = _check_confidence(confidence)
    n_resamples = resamples_for(confidence, n_resamples)  # >= 20 draws in each tail
    y = np.asarray(y, dtype=np.int64)
    n = y.size
    method = f"paired_bootstrap(B={n_resamples})"
    if n < 2:
        return _undefined("macro_f1", method, n, confidence, f"needs at least 2 rows; got {n}")
    k = classes
    codes = (y * k + predicted_candidate) * k + predicted_baseline
    cells, counts = np.unique(codes, return_counts=True)
    label, cand, base = cells // (k * k), (cells // k) % k, cells % k
    present = np.bincount(y, minlength=k) > 0

    def macro(weights: np.ndarray, guess: np.ndarray) -> np.ndarray:
        eye = np.eye(k)
        tp = weights @ (eye[label] * (guess == label)[:, None])
        fp = weights @ (eye[guess] * (guess != label)[:, None])
        fn = weights @ (eye[label] * (guess != label)[:, None])
        return f1_from_counts(tp, fp, fn)[..., present].mean(axis=-1)

    observed = counts.astype(float)[None, :]
    point_c, point_b = float(macro(observed, cand)[0]), float(macro(observed, base)[0])
    nan = math.nan
    point = Comparison(
        "macro_f1", point_c, point_b, point_c - point_b, nan, nan, confidence, method, n
    )
    resampled = _resample_cells(counts.astype(float), n_resamples, seed)
    return _from_draws(point, macro(resampled, cand) - macro(resampled, base))
