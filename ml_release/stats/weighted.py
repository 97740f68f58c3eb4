"""Metrics under row weights, for many weight vectors at once: the engine of the bootstrap.

A `WeightedMetric` does the per-model work once (indicators, one sort, bins) and maps a (k, n)
matrix of resample counts to k metric values, so a paired bootstrap needs no Python loop per
resample. With integer weights the value equals the metric on the rows repeated that often.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse


def as_binary_arrays(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels and scores as float arrays of one length, labels in {0, 1}, scores finite."""
    labels = np.asarray(y)
    arrays = [np.asarray(s, dtype=float) for s in scores]
    if labels.ndim != 1 or any(a.shape != labels.shape for a in arrays):
        shapes = ", ".join(str(a.shape) for a in [labels, *arrays])
        raise ValueError(f"labels and scores must be 1-D arrays of one length, got {shapes}")
    values = np.unique(labels)
    if not np.isin(values, [0, 1]).all():
        raise ValueError(f"labels must be 0/1 or bool, found {values[:5].tolist()}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("scores contain NaN or infinity; fix the model output before comparing")
    return labels.astype(float), *arrays


@dataclass(frozen=True)
class WeightedMetric:
    """A metric of (labels, scores) under row weights, for many weight vectors at once.

    `prepare(y, score)` does the per-model work once (indicators, sort order, bins) and returns
    a function that maps a (k, n) weight matrix to k metric values; undefined values are NaN.
    With integer weights (bootstrap counts) the value equals the metric on the rows repeated
    that many times.
    """

    name: str
    prepare: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]

    def __call__(self, y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The metric under each row of `weights` (shape (k, n) or (n,))."""
        y, score = as_binary_arrays(y, score)
        return self.prepare(y, score)(np.atleast_2d(np.asarray(weights, dtype=float)))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    return np.divide(num, den, out=out, where=den > 0)


_COUNT_RATIOS = {  # (true pos., predicted pos., actual pos., total weight) -> metric
    "precision": lambda tp, pp, p, total: _ratio(tp, pp),
    "recall": lambda tp, pp, p, total: _ratio(tp, p),
    "f1": lambda tp, pp, p, total: _ratio(2 * tp, pp + p),
    "positive_rate": lambda tp, pp, p, total: _ratio(pp, total),
}


def _counts_at_threshold(kind: str, threshold: float) -> Callable:
    def prepare(y: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        flagged = (score >= threshold).astype(float)
        columns = np.column_stack([y * flagged, flagged, y, np.ones_like(y)])
        return lambda w: _COUNT_RATIOS[kind](*(w @ columns).T)

    return prepare


def _average_precision(y: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    order = np.argsort(-score, kind="stable")
    ranked, hit = score[order], y[order]
    new = np.flatnonzero(ranked[1:] != ranked[:-1]) + 1  # tied scores form one threshold
    first, last = np.append(0, new), np.append(new - 1, y.size - 1)
    ties = first.size < y.size

    def evaluate(w: np.ndarray) -> np.ndarray:
        # AP = sum_j (hits gained at threshold j) * precision_j / positives, in place where
        # possible: at n = 10^6 this is bound by memory traffic, not arithmetic.
        w = np.take(w, order, axis=1)
        gain = w * hit
        hits = np.cumsum(gain, axis=1)
        seen = np.cumsum(w, axis=1, out=w)
        if ties:
            gain, hits, seen = np.add.reduceat(gain, first, axis=1), hits[:, last], seen[:, last]
        positives = hits[:, -1].copy()
        precision = np.divide(hits, np.maximum(seen, 1e-300, out=seen), out=hits)  # 0/0 -> 0
        return _ratio(np.einsum("ij,ij->i", gain, precision), positives)

    return evaluate


def _expected_calibration_error(n_bins: int) -> Callable:
    def prepare(y: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        if score.min() < 0 or score.max() > 1:
            raise ValueError(
                f"ece needs probabilities in [0, 1], got [{score.min()}, {score.max()}]"
            )
        # Equal-width bins (a, b], the first [0, b]: sklearn's calibration_curve(strategy="uniform")
        bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], score)
        gap = sparse.csr_array((y - score, (np.arange(y.size), bins)), shape=(y.size, n_bins))
        return lambda w: _ratio(np.abs(w @ gap).sum(axis=1), w.sum(axis=1))

    return prepare


WEIGHTED_METRICS = ("precision", "recall", "f1", "positive_rate", "pr_auc", "ece")


def weighted_metric(name: str, threshold: float = 0.5, n_bins: int = 10) -> WeightedMetric:
    """A built-in weighted metric by name.

    Args:
        name: One of WEIGHTED_METRICS. `pr_auc` is average precision (sklearn's definition).
        threshold: Scores >= threshold count as predicted positive (precision, recall, f1,
            positive_rate).
        n_bins: Equal-width bins over [0, 1] for `ece`.

    Returns:
        The metric, ready for `paired_bootstrap_delta`.
    """
    if name in _COUNT_RATIOS:
        return WeightedMetric(name, _counts_at_threshold(name, threshold))
    if name == "pr_auc":
        return WeightedMetric(name, _average_precision)
    if name == "ece":
        return WeightedMetric(name, _expected_calibration_error(n_bins))
    raise ValueError(f"unknown weighted metric {name!r}; choose one of {WEIGHTED_METRICS}")


def resampled(
    metric_fn: Callable[[np.ndarray, np.ndarray], float], name: str = ""
) -> WeightedMetric:
    """Fallback for any `metric_fn(y, score)`: materialize each resample and call it (a loop).

    Args:
        metric_fn: A metric of labels and scores, e.g. `sklearn.metrics.roc_auc_score`.
        name: Name to record; defaults to the function's name.

    Returns:
        A weighted metric that repeats row i `w[i]` times; integer weights only.
    """

    def prepare(y: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        rows = np.arange(y.size)

        def evaluate(weights: np.ndarray) -> np.ndarray:
            samples = (np.repeat(rows, np.rint(w).astype(np.intp)) for w in weights)
            return np.array([metric_fn(y[i], score[i]) for i in samples], dtype=float)

        return evaluate

    return WeightedMetric(name or getattr(metric_fn, "__name__", "metric"), prepare)
