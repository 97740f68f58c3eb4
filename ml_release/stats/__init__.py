"""Paired statistics for release gates: candidate vs production on the same rows.

`paired` computes a `Comparison` (delta = candidate - baseline with an interval), `multiple`
keeps false alarms in check across segments, and `verdict` turns a comparison and a
tolerated-drop margin into pass, fail or inconclusive. Methods and formulas:
docs/statistics.md.
"""

from ml_release.stats.multiple import benjamini_hochberg, holm, simultaneous_confidence
from ml_release.stats.paired import (
    Comparison,
    delong_auc_delta,
    paired_bootstrap_delta,
    paired_mean_delta,
    resample_weights,
    resamples_for,
)
from ml_release.stats.verdict import (
    Decision,
    decide,
    decide_segments,
    p_worse_than_margin,
    tolerated_margin,
)
from ml_release.stats.weighted import WEIGHTED_METRICS, WeightedMetric, resampled, weighted_metric

__all__ = [
    "WEIGHTED_METRICS",
    "Comparison",
    "Decision",
    "WeightedMetric",
    "benjamini_hochberg",
    "decide",
    "decide_segments",
    "delong_auc_delta",
    "holm",
    "p_worse_than_margin",
    "paired_bootstrap_delta",
    "paired_mean_delta",
    "resample_weights",
    "resampled",
    "resamples_for",
    "simultaneous_confidence",
    "tolerated_margin",
    "weighted_metric",
]
