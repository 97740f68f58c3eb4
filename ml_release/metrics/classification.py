"""Binary-classification metrics, global and per segment, with their direction and support.

A metric is a number or *undefined*, never a made-up number: it is undefined when the rows are
fewer than `min_support`, or when its denominator is empty (no positives for recall, F1 and the
AUCs; no negatives for the AUCs; no predicted positives for precision). Precision with predicted
positives but no actual positives is 0, and F1 with positives but none predicted is 0: real
findings. Log loss, Brier, ECE and the positive rate are defined on any non-empty rows.

Each function in `METRICS` takes validated `(y, score)` and optional weights, a vector `(n,)` or
a matrix `(B, n)` of row multiplicities (bootstrap resamples), and returns a float, or a `(B,)`
array for a matrix, NaN where undefined; the score is sorted once per call, not per resample.
ROC-AUC is the Mann-Whitney U with average ranks for ties, computed per group of tied scores as
`sum_g pos_g * (neg_below_g + neg_g / 2) / (P * N)`: algebraically `U / (P * N)` from mid-ranks,
without subtracting the two large numbers of the rank-sum form.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ml_release.metrics.calibration import (
    as_result,
    as_weight_matrix,
    brier,
    check_binary_inputs,
    expected_calibration_error,
    group_codes,
    group_sums,
    log_loss,
    ratio,
)

CROSS = "\u00d7"  # the multiplication sign that joins crossed segment names and values


@dataclass(frozen=True)
class Support:
    """How many rows a metric rests on (for ranking metrics: queries, see `ranking`)."""

    n: int
    positives: int
    negatives: int


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, or why it has none (`value is None` iff `undefined_reason` is set)."""

    name: str
    value: float | None
    undefined_reason: str | None
    support: Support


def _confusion(y, score, weights, threshold):
    matrix, vector = as_weight_matrix(weights, len(y))
    predicted = score >= threshold
    tp = matrix @ (y & predicted).astype(float)
    fp = matrix @ (~y & predicted).astype(float)
    fn = matrix @ (y & ~predicted).astype(float)
    return tp, fp, fn, matrix.sum(axis=1), vector


def precision(y, score, weights=None, *, threshold: float = 0.5):
    """Share of predicted positives (score >= threshold) that are positive."""
    tp, fp, _, _, vector = _confusion(y, score, weights, threshold)
    return as_result(ratio(tp, tp + fp), vector)


def recall(y, score, weights=None, *, threshold: float = 0.5):
    """Share of positives predicted positive (score >= threshold)."""
    tp, _, fn, _, vector = _confusion(y, score, weights, threshold)
    return as_result(ratio(tp, tp + fn), vector)


def f1(y, score, weights=None, *, threshold: float = 0.5):
    """2TP / (2TP + FP + FN); undefined without positives, 0 when none is predicted."""
    tp, fp, fn, _, vector = _confusion(y, score, weights, threshold)
    return as_result(np.where(tp + fn > 0, ratio(2 * tp, 2 * tp + fp + fn), np.nan), vector)


def positive_rate(y, score, weights=None, *, threshold: float = 0.5):
    """Share of rows predicted positive (informational: no better direction)."""
    tp, fp, _, total, vector = _confusion(y, score, weights, threshold)
    return as_result(ratio(tp + fp, total), vector)


def _class_weights_by_score(y, score, weights):
    """Positive and negative weight per distinct score, ascending: two `(B, G)` matrices."""
    if np.asarray(y).dtype != bool:  # 0/1 labels: validated, never bit-inverted by `~`
        y, score = check_binary_inputs(y, score)
    matrix, vector = as_weight_matrix(weights, len(y))
    distinct, groups = np.unique(score, return_inverse=True)
    positive = group_sums(matrix * y, groups.ravel(), len(distinct))
    negative = group_sums(matrix * ~y, groups.ravel(), len(distinct))
    return positive, negative, vector


def roc_auc(y, score, weights=None, *, threshold: float = 0.5):
    """Mann-Whitney ROC-AUC with ties counted one half (equals sklearn's roc_auc_score)."""
    positive, negative, vector = _class_weights_by_score(y, score, weights)
    negative_below = np.cumsum(negative, axis=1) - negative
    pairs = (positive * (negative_below + 0.5 * negative)).sum(axis=1)
    return as_result(ratio(pairs, positive.sum(axis=1) * negative.sum(axis=1)), vector)


def pr_auc(y, score, weights=None, *, threshold: float = 0.5):
    """Average precision: recall gained at each distinct score times precision there."""
    positive, negative, vector = _class_weights_by_score(y, score, weights)
    positive, negative = positive[:, ::-1], negative[:, ::-1]  # descending score
    true_pos, false_pos = np.cumsum(positive, axis=1), np.cumsum(negative, axis=1)
    precision_at = np.nan_to_num(ratio(true_pos, true_pos + false_pos))
    value = ratio((positive * precision_at).sum(axis=1), positive.sum(axis=1))
    return as_result(np.where(negative.sum(axis=1) > 0, value, np.nan), vector)


def ece(y, score, weights=None, *, threshold: float = 0.5):
    """Expected calibration error, 10 equal-width bins (see `ml_release.metrics.calibration`)."""
    return expected_calibration_error(y, score, weights)


class MetricDefinition(NamedTuple):
    """A metric function and its direction (None: informational, never gated on direction)."""

    function: Callable[..., float | np.ndarray]
    greater_is_better: bool | None


METRICS: dict[str, MetricDefinition] = {
    "precision": MetricDefinition(precision, True),
    "recall": MetricDefinition(recall, True),
    "f1": MetricDefinition(f1, True),
    "roc_auc": MetricDefinition(roc_auc, True),
    "pr_auc": MetricDefinition(pr_auc, True),
    "log_loss": MetricDefinition(log_loss, False),
    "brier": MetricDefinition(brier, False),
    "ece": MetricDefinition(ece, False),
    "positive_rate": MetricDefinition(positive_rate, None),
}


def _undefined_reason(name, support, predicted_positives, threshold, min_support):
    if support.n < min_support:
        return f"n={support.n} below min_support={min_support}"
    if name in ("roc_auc", "pr_auc") and 0 in (support.positives, support.negatives):
        return f"one class only (0 {'positives' if support.positives == 0 else 'negatives'})"
    if name in ("recall", "f1") and support.positives == 0:
        return f"no positives among {support.n} rows (0 positives)"
    if name == "precision" and predicted_positives == 0:
        return f"no predicted positives at threshold {threshold}"
    return None


def _evaluate(y, score, threshold, min_support, names) -> dict[str, MetricValue]:
    support = Support(len(y), int(y.sum()), int((~y).sum()))
    predicted_positives = int((score >= threshold).sum())
    results = {}
    for name in names:
        reason = _undefined_reason(name, support, predicted_positives, threshold, min_support)
        value = None if reason else METRICS[name].function(y, score, threshold=threshold)
        if value is not None and np.isnan(value):  # a denominator this module did not foresee
            raise RuntimeError(f"{name} is NaN on {support} without a known reason.")
        results[name] = MetricValue(name, value, reason, support)
    return results


def _checked_names(names, min_support) -> list[str]:
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}.")
    chosen = list(METRICS) if names is None else list(names)
    unknown = [name for name in chosen if name not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; choose from {sorted(METRICS)}.")
    return chosen


def compute_metrics(
    y, score, *, threshold: float = 0.5, min_support: int = 1, names=None
) -> dict[str, MetricValue]:
    """Compute metrics on all rows; see the module docstring for when a metric is undefined.

    Args:
        y: 0/1 labels.
        score: Predicted probability of the positive class, in [0, 1].
        threshold: Rows with score >= threshold are predicted positive.
        min_support: Fewer rows than this make every metric undefined (at least 1).
        names: Metrics to compute (keys of `METRICS`); all when None.

    Returns:
        Metric name to `MetricValue`, in the order of `names`.

    Raises:
        MetricInputError: A label is not 0/1 or a score is not a finite value in [0, 1].
    """
    chosen = _checked_names(names, min_support)
    labels, probabilities = check_binary_inputs(y, score)
    return _evaluate(labels, probabilities, threshold, min_support, chosen)


def _crossing(first, second) -> tuple[np.ndarray, np.ndarray]:
    """Joined names and row codes of the combinations of two coded columns that occur."""
    (names_a, codes_a), (names_b, codes_b) = first, second
    pairs, codes = np.unique(codes_a * len(names_b) + codes_b, return_inverse=True)
    joined = [f"{names_a[p // len(names_b)]}{CROSS}{names_b[p % len(names_b)]}" for p in pairs]
    return np.array(joined), codes.ravel()


def segment_metrics(
    y,
    score,
    segments: dict[str, np.ndarray],
    *,
    threshold: float = 0.5,
    min_support: int = 1,
    names=None,
    crossings: bool = False,
) -> dict[tuple[str, str], dict[str, MetricValue]]:
    """Compute metrics for every value of every segment column, and optionally their crossings.

    Args:
        y: 0/1 labels, as for `compute_metrics`.
        score: Probabilities in [0, 1], as for `compute_metrics`.
        segments: Column name to one value per row. Values are keyed by their text; in object
            columns a missing value is a segment of its own ("None" or "nan").
        threshold: As for `compute_metrics`.
        min_support: Segments with fewer rows have every metric undefined.
        names: As for `compute_metrics`.
        crossings: Also every pair of columns, names and values joined by `CROSS`, e.g.
            `("region\u00d7channel", "south\u00d7web")`; only combinations that occur.

    Returns:
        `(column, value)` to the metrics of those rows, as `compute_metrics` returns them.

    Raises:
        MetricInputError: A label is not 0/1 or a score is not a finite value in [0, 1].
    """
    chosen = _checked_names(names, min_support)
    labels, probabilities = check_binary_inputs(y, score)
    coded = {
        name: group_codes(values, f"Segment column {name!r}", len(labels))
        for name, values in segments.items()
    }
    groupings = [(name, *pair) for name, pair in coded.items()]
    if crossings:
        for first, second in itertools.combinations(coded, 2):
            groupings.append((f"{first}{CROSS}{second}", *_crossing(coded[first], coded[second])))
    results = {}
    for column, values, codes in groupings:
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=len(values)))[:-1]
        for value, rows in zip(values, np.split(order, bounds), strict=True):
            results[(column, str(value))] = _evaluate(
                labels[rows], probabilities[rows], threshold, min_support, chosen
            )
    return results
