"""Offline evaluation metrics: binary classification (global and per segment), calibration, ranking.

The core is plain numpy; it never imports Dagster. Every metric carries its direction in
`METRICS` / `RANKING_METRICS` (`greater_is_better`, None for informational metrics) and is
reported as a `MetricValue`: a number, or undefined with the reason, plus its support.
"""

from ml_release.metrics.calibration import (
    DEFAULT_BINS,
    MetricInputError,
    check_binary_inputs,
    expected_calibration_error,
    reliability_table,
)
from ml_release.metrics.classification import (
    CROSS,
    METRICS,
    MetricDefinition,
    MetricValue,
    Support,
    compute_metrics,
    segment_metrics,
)
from ml_release.metrics.ranking import (
    RANKING_METRICS,
    ndcg_at_k,
    ndcg_by_query,
    recall_at_k,
    recall_by_query,
)

__all__ = [
    "CROSS",
    "DEFAULT_BINS",
    "METRICS",
    "RANKING_METRICS",
    "MetricDefinition",
    "MetricInputError",
    "MetricValue",
    "Support",
    "check_binary_inputs",
    "compute_metrics",
    "expected_calibration_error",
    "ndcg_at_k",
    "ndcg_by_query",
    "recall_at_k",
    "recall_by_query",
    "reliability_table",
    "segment_metrics",
]
