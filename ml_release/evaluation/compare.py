"""One paired comparison of a metric on one slice of rows, with the method that fits it.

- ROC-AUC: DeLong's test for correlated AUCs (exact method, no resampling).
- Log loss and Brier score: means of per-row losses, so the paired t interval of the per-row
  differences is exact.
- Everything else (precision, recall, F1, PR-AUC, ECE): the vectorized paired bootstrap; above
  `little_above` rows, PR-AUC and ECE use the bag of little bootstraps. Its depth follows the
  confidence the interval is computed at (Bonferroni included): at least 20 draws in each tail
  (`resamples_for`), and the comparison's `draws` say how many were used.
See docs/statistics.md.
"""

import numpy as np

from ml_release.stats import (
    Comparison,
    delong_auc_delta,
    paired_bootstrap_delta,
    paired_mean_delta,
    resamples_for,
    weighted_metric,
)

EPSILON = 1e-15


def row_losses(metric: str, y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per-row log loss or squared error, whose mean is the metric."""
    if metric == "brier":
        return (score - y) ** 2
    p = np.clip(score, EPSILON, 1 - EPSILON)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def compare(
    metric: str,
    y: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray,
    *,
    confidence: float,
    threshold: float = 0.5,
    resamples: int = 1000,
    seed: int = 0,
    little_above: int | None = None,
) -> Comparison:
    """Candidate - baseline for `metric` on the same rows, with its interval."""
    y = np.asarray(y, dtype=float)
    if metric == "roc_auc":
        return delong_auc_delta(y, candidate, baseline, confidence=confidence)
    if metric in ("log_loss", "brier"):
        return paired_mean_delta(
            row_losses(metric, y, candidate),
            row_losses(metric, y, baseline),
            confidence=confidence,
            metric=metric,
        )
    return paired_bootstrap_delta(
        y.astype(bool),
        candidate,
        baseline,
        weighted_metric(metric, threshold=threshold),
        confidence=confidence,
        n_resamples=resamples_for(confidence, resamples),
        seed=seed,
        metric=metric,
        little_above=little_above,
    )
