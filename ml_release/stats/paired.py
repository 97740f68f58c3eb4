"""Paired comparisons of a candidate model with the production baseline on the same rows.

Each function returns a `Comparison`: both models' metric, delta = candidate - baseline, a
two-sided interval for delta at `confidence`, and the method used.

- `delong_auc_delta`: DeLong et al. (1988) for two correlated ROC AUCs, in O(n log n) with the
  midrank algorithm of Sun & Xu (2014).
- `paired_mean_delta`: a paired t interval for the mean of per-row losses (log loss, Brier).
- `paired_bootstrap_delta`: a paired bootstrap for any metric written as a `WeightedMetric`
  (metric under row weights), evaluated for a chunk of resamples at once; threshold metrics
  (precision, recall, F1, positive rate) resample 8 cell counts instead of n rows, exactly.

A metric that the data cannot define (one class only, no predicted positives) gives NaN numbers
and an `undefined_reason`, which the verdict reads as inconclusive; malformed inputs raise
`ValueError`. Formulas and references: docs/statistics.md.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from scipy import stats

from ml_release.stats.little import LittlePlan, little_bootstrap_deltas, little_plan
from ml_release.stats.weighted import (
    WeightedMetric,
    as_binary_arrays,
    confusion_cells,
    resample_weights,
)

MAX_UNDEFINED_SHARE = 0.01  # resamples on which the metric may be undefined before we give up
MIN_TAIL_DRAWS = 20  # bootstrap draws beyond each end of a percentile interval, at least
MAX_RESAMPLES = 200_000  # beyond this a gate asks for fewer segments or lower confidence


def resamples_for(confidence: float, requested: int) -> int:
    """Resamples B so that each tail of a `confidence` percentile interval holds >= 20 draws.

    A percentile interval's end is the (1 - confidence)/2 quantile of the B draws; with
    Bonferroni over m segments the per-segment confidence is 1 - alpha/m, and B = 1000 leaves
    2.5 draws in a tail at m = 10, too few to place the end. So B is raised to
    ceil(20 / ((1 - confidence) / 2)) when `requested` is smaller (8,000 for 10 segments).

    Raises:
        ValueError: More than `MAX_RESAMPLES` would be needed, with the fix.
    """
    tail = (1.0 - _check_confidence(confidence)) / 2.0
    needed = math.ceil(MIN_TAIL_DRAWS / tail - 1e-9)
    if needed > MAX_RESAMPLES:
        raise ValueError(
            f"a bootstrap interval at confidence {confidence:.6g} needs {needed:,} resamples "
            f"for {MIN_TAIL_DRAWS} draws in each tail, more than {MAX_RESAMPLES:,}: judge fewer "
            "segments (drop crossings or segment columns), lower the gate's confidence, or use "
            "a metric with an exact interval (roc_auc, log_loss, brier)"
        )
    return max(int(requested), needed)


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on the same rows.

    Attributes:
        metric: Metric name (`roc_auc`, `log_loss`, `precision`, ...).
        candidate: The candidate's metric on all rows.
        baseline: The baseline's metric on the same rows.
        delta: candidate - baseline.
        low: Lower end of the two-sided interval for delta.
        high: Upper end of that interval.
        confidence: Coverage of [low, high], e.g. 0.95.
        method: `delong`, `paired_t` or `paired_bootstrap(B=1000)`.
        n: Rows compared.
        p_value: Two-sided p-value of H0: delta = 0, when the method gives one.
        std_error: Standard error of delta (DeLong, paired t).
        df: Degrees of freedom of a t reference distribution; None means normal.
        positives: Rows with label 1, when labels were given.
        undefined_reason: Why the metric could not be computed; empty when it could.
        draws: Bootstrap replicates of delta (paired bootstrap only).
    """

    metric: str
    candidate: float
    baseline: float
    delta: float
    low: float
    high: float
    confidence: float
    method: str
    n: int
    p_value: float | None = None
    std_error: float | None = None
    df: float | None = None
    positives: int | None = None
    undefined_reason: str = ""
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def defined(self) -> bool:
        """Whether delta and its interval are finite numbers."""
        numbers = (self.delta, self.low, self.high)
        return not self.undefined_reason and all(math.isfinite(x) for x in numbers)


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _undefined(metric: str, method: str, n: int, confidence: float, reason: str) -> Comparison:
    nan = math.nan
    comparison = Comparison(metric, nan, nan, nan, nan, nan, confidence, method, n)
    return replace(comparison, undefined_reason=reason)


def _from_standard_error(
    metric: str, c: float, b: float, se: float, confidence: float, method: str, n: int, **kw
) -> Comparison:
    dist = stats.norm if kw.get("df") is None else stats.t(kw["df"])
    c, b, se = float(c), float(b), float(se)
    half = float(dist.ppf(0.5 + confidence / 2)) * se
    if se > 0:
        p = float(2 * dist.sf(abs(c - b) / se))
    else:  # identical scores or losses: no sampling variation in delta at all
        p = 1.0 if c == b else 0.0
    low, high = c - b - half, c - b + half
    return Comparison(metric, c, b, c - b, low, high, confidence, method, n, p, se, **kw)


def delong_auc_delta(
    y: np.ndarray,
    score_candidate: np.ndarray,
    score_baseline: np.ndarray,
    confidence: float = 0.95,
) -> Comparison:
    """DeLong's test for the difference of two ROC AUCs measured on the same rows.

    The AUCs are Mann-Whitney statistics from midranks (ties count one half), so they equal
    `sklearn.metrics.roc_auc_score`. Their covariance comes from the structural components of
    DeLong et al. (1988), computed with three rankings per model (Sun & Xu 2014).

    Args:
        y: Binary labels (0/1 or bool), one per row.
        score_candidate: Candidate scores for the same rows.
        score_baseline: Baseline scores for the same rows.
        confidence: Two-sided coverage of the normal interval for delta.

    Returns:
        The comparison with standard error and two-sided p-value of H0: AUC_c = AUC_b.
    """
    confidence = _check_confidence(confidence)
    y, sc, sb = as_binary_arrays(y, score_candidate, score_baseline)
    pos = y == 1
    m, k = int(pos.sum()), int(y.size - pos.sum())
    if m < 2 or k < 2:
        reason = f"ROC AUC needs at least 2 positives and 2 negatives; got {m} and {k}"
        return replace(_undefined("roc_auc", "delong", y.size, confidence, reason), positives=m)
    scores = np.vstack([sc, sb])
    x, z = scores[:, pos], scores[:, ~pos]
    rank_x = stats.rankdata(x, axis=1)  # midranks among positives
    rank_z = stats.rankdata(z, axis=1)  # among negatives
    rank_all = stats.rankdata(np.hstack([x, z]), axis=1)  # among all rows
    auc = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / k
    v10 = (rank_all[:, :m] - rank_x) / k  # per positive: share of negatives it outranks
    v01 = 1.0 - (rank_all[:, m:] - rank_z) / m  # per negative: share of positives above it
    cov = np.cov(v10) / m + np.cov(v01) / k
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    se = math.sqrt(max(float(var), 0.0))
    return _from_standard_error(
        "roc_auc", auc[0], auc[1], se, confidence, "delong", y.size, positives=m
    )


def paired_mean_delta(
    loss_candidate: np.ndarray,
    loss_baseline: np.ndarray,
    confidence: float = 0.95,
    metric: str = "mean_loss",
) -> Comparison:
    """Paired t interval for the difference of two mean per-row losses.

    The mean of per-row differences is the difference of the means, and its t interval is the
    exact paired method (normal in the limit; the t quantile is used at every n).

    Args:
        loss_candidate: Candidate loss per row (e.g. log loss or squared error).
        loss_baseline: Baseline loss on the same rows.
        confidence: Two-sided coverage of the interval for delta.
        metric: Name recorded in the comparison (`log_loss`, `brier`).

    Returns:
        The comparison; its p-value equals `scipy.stats.ttest_rel`'s.
    """
    confidence = _check_confidence(confidence)
    c = np.asarray(loss_candidate, dtype=float)
    b = np.asarray(loss_baseline, dtype=float)
    if c.shape != b.shape or c.ndim != 1:
        raise ValueError(f"losses must be 1-D arrays of one length, got {c.shape} and {b.shape}")
    if not (np.isfinite(c).all() and np.isfinite(b).all()):
        raise ValueError("losses contain NaN or infinity; clip probabilities before the loss")
    if c.size < 2:
        reason = f"a paired interval needs at least 2 rows; got {c.size}"
        return _undefined(metric, "paired_t", c.size, confidence, reason)
    se = float(np.std(c - b, ddof=1)) / math.sqrt(c.size)
    return _from_standard_error(
        metric, c.mean(), b.mean(), se, confidence, "paired_t", c.size, df=c.size - 1
    )


def _resample_cells(cells: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """B resamples of cell counts: Multinomial(n; observed cell shares), shape (B, cells)."""
    counts = np.zeros((n_resamples, cells.size))
    occupied = cells > 0  # empty cells stay empty; no float rounding can leak rows into them
    n = int(cells.sum())
    shares = cells[occupied] / n
    counts[:, occupied] = np.random.default_rng(seed).multinomial(n, shares, size=n_resamples)
    return counts


def _little(metric_fn, groups, little_above, n, positives, n_resamples) -> LittlePlan | None:
    if not isinstance(metric_fn, WeightedMetric) or groups is not None or little_above is None:
        return None
    return little_plan(n, positives, n_resamples) if n > little_above else None


def paired_bootstrap_delta(
    y: np.ndarray,
    score_candidate: np.ndarray,
    score_baseline: np.ndarray,
    metric_fn: WeightedMetric | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    *,
    metric: str | None = None,
    chunk_size: int | None = None,
    little_above: int | None = None,
) -> Comparison:
    """Paired percentile bootstrap for delta of any metric, vectorized over resamples.

    Both models are scored on the same resamples. `metric_fn(y, score, weights)` returns one
    value per row of `weights`; a `WeightedMetric` is prepared once per model (sorting, binning)
    and then evaluated chunk by chunk, so memory stays bounded at any n and B.

    A `WeightedMetric` with a `ConfusionRule` (precision, recall, F1, positive rate) and no
    `groups` takes the cell path: one pass counts the rows of the 8 cells (label, candidate
    flags, baseline flags), then `rng.multinomial(n, cell shares, size=B)` draws the resampled
    cell counts. That is exactly the distribution of the cell counts under the row bootstrap,
    so the replicates are distributed exactly as the row path's (same percentile interval and
    p-value), though not the same numbers for a seed: both paths use
    `numpy.random.default_rng(seed)`, the row path for row counts, the cell path for cell
    counts. Cost: O(n) once plus O(B), instead of O(n B).

    Args:
        y: Binary labels, one per row.
        score_candidate: Candidate scores (probabilities for `ece`).
        score_baseline: Baseline scores for the same rows.
        metric_fn: A `WeightedMetric` (see `weighted_metric`) or any function of that signature.
        confidence: Two-sided coverage of the percentile interval for delta.
        n_resamples: Bootstrap resamples B.
        seed: Seed of the resampling (see above); the same seed gives the same result.
        groups: Optional cluster label per row; whole clusters are resampled (row path).
        metric: Name to record; defaults to the metric's own name.
        chunk_size: Resamples evaluated at once on the row path (see `resample_weights`).
        little_above: Above this many rows, a `WeightedMetric` without cell path or groups
            uses the bag of little bootstraps (`ml_release.stats.little`) when its subsets
            would cover at most half the rows; None: always resample all rows.

    Returns:
        The comparison, with the replicates of delta in `draws` and the two-sided bootstrap
        p-value of H0: delta = 0.
    """
    confidence = _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    y, sc, sb = as_binary_arrays(y, score_candidate, score_baseline)
    name = metric or getattr(metric_fn, "name", None) or getattr(metric_fn, "__name__", "metric")
    weighted = isinstance(metric_fn, WeightedMetric)
    rule = metric_fn.confusion if weighted and groups is None else None
    if rule is not None:
        cells = confusion_cells(y, rule.flags(sc), rule.flags(sb))
        cand, base = (float(v[0]) for v in rule.on_cells(cells))
    else:
        prepare = metric_fn.prepare if weighted else partial(partial, metric_fn)
        on_candidate, on_baseline = prepare(y, sc), prepare(y, sb)
        everyone = np.ones((1, y.size))
        cand, base = float(on_candidate(everyone)[0]), float(on_baseline(everyone)[0])
    nan, positives, method = math.nan, int(y.sum()), f"paired_bootstrap(B={n_resamples})"
    point = Comparison(name, cand, base, cand - base, nan, nan, confidence, method, y.size)
    point = replace(point, positives=positives)
    if not (math.isfinite(cand) and math.isfinite(base)):
        reason = f"{name} is undefined on these rows (n={y.size}, positives={positives})"
        return replace(point, undefined_reason=reason)
    if rule is not None:
        on_cells = rule.on_cells(_resample_cells(cells, n_resamples, seed))
        draws = on_cells[0] - on_cells[1]
    elif plan := _little(metric_fn, groups, little_above, y.size, positives, n_resamples):
        deviations = little_bootstrap_deltas(y, sc, sb, metric_fn, plan, seed)
        draws, point = point.delta + deviations, replace(point, method=plan.method)
    else:
        compact = np.uint8 if weighted and metric_fn.takes_counts else np.float64
        weights = resample_weights(y.size, n_resamples, seed, groups, chunk_size, compact)
        draws = np.concatenate([on_candidate(w) - on_baseline(w) for w in weights])
    return _percentile_interval(point, draws)


def _percentile_interval(point: Comparison, draws: np.ndarray) -> Comparison:
    """`point` with the percentile interval and two-sided p-value of its delta's replicates."""
    finite = draws[np.isfinite(draws)]
    if draws.size - finite.size > MAX_UNDEFINED_SHARE * draws.size:
        missing = draws.size - finite.size
        reason = (
            f"{point.metric} is undefined on {missing} of {draws.size} resamples: too few positives"
        )
        return replace(point, undefined_reason=reason)
    alpha = 1.0 - point.confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    tail = min(np.sum(finite <= 0), np.sum(finite >= 0))
    p = min(1.0, 2 * (1 + float(tail)) / (finite.size + 1))
    return replace(point, low=float(low), high=float(high), p_value=p, draws=draws)
