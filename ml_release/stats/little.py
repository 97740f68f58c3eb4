"""The bag of little bootstraps for a paired delta on many rows (Kleiner et al. 2014).

A row bootstrap of PR AUC or ECE touches all n rows in every resample: at n = 10^6 and
B = 1000 that is 10^9 weights per model, 15-40 s. The bag of little bootstraps (BLB) gets the
same sampling distribution from s disjoint random subsets of b = n^0.7 rows:

1. for subset j, compute delta_j (candidate - baseline on the subset's rows);
2. draw r resamples *of size n* on the subset: weights over its b rows that sum to about n,
   here Poisson(n / b) per row (the Poisson bootstrap, independent counts with the mean and
   variance of Multinomial(n; 1/b, ..., 1/b) up to O(1/b));
3. keep the deviations delta*_jk - delta_j, which spread like the full-data estimator's
   errors because each resample stands for n rows, although it costs only b.

A metric that is a non-smooth function of weighted means (ECE: the sum over bins of |mean gap|)
is treated as BLB treats any smooth statistic and the function applied afterwards: the subsets
estimate the error distribution of the means, and each replicate applies the function to the
full data's means plus one such error. Near a kink (a calibrated bin), a subset's own means
are much noisier than the full data's, so applying the function on the subset would widen
the interval (by 25% in our check at n = 200,000).

The replicates are delta + the pooled deviations of the s subsets (s r = B in all), so the
percentile interval and the bootstrap p-value of `paired_bootstrap_delta` apply unchanged.
Pooling the deviations averages the s subsets' estimates of the error distribution (Kleiner
et al. average a quality measure over subsets; averaging the distribution keeps the extreme
quantiles that Bonferroni-adjusted intervals need estimable from B draws, not from r).

Subsets are made big enough for the metric: each must hold, in expectation, at least
`MIN_CLASS_ROWS` rows of the rarer class, so b grows beyond n^0.7 for rare positives; when s
such subsets would cover more than half the rows, BLB saves little and `little_plan` returns
None (the caller resamples all rows). Cost: O(s b r) = O(B n^0.7) instead of O(B n).
See docs/statistics.md, "Bag of little bootstraps".
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ml_release.stats.weighted import WeightedMetric

GAMMA = 0.7  # subset size b = n^GAMMA, the value Kleiner et al. recommend
SUBSETS = 10
MIN_CLASS_ROWS = 250  # expected rows of the rarer class in each subset
THREADS = min(SUBSETS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass(frozen=True)
class LittlePlan:
    """How a BLB run splits the work: s subsets of b rows, r resamples each."""

    subsets: int
    size: int
    resamples: int

    @property
    def method(self) -> str:
        """The `Comparison.method` label."""
        total = self.subsets * self.resamples
        return f"little_bootstrap(s={self.subsets}, b={self.size}, B={total})"


def little_plan(n: int, positives: int, n_resamples: int) -> LittlePlan | None:
    """The subsets for n rows with `positives` of class 1, or None when BLB would not pay off."""
    rarer = min(positives, n - positives)
    if rarer == 0:
        return None
    size = max(math.ceil(n**GAMMA), math.ceil(MIN_CLASS_ROWS * n / rarer))
    if SUBSETS * size > n // 2:
        return None
    return LittlePlan(SUBSETS, size, math.ceil(n_resamples / SUBSETS))


def little_bootstrap_deltas(
    y: np.ndarray,
    score_candidate: np.ndarray,
    score_baseline: np.ndarray,
    metric: WeightedMetric,
    plan: LittlePlan,
    seed: int = 0,
) -> np.ndarray:
    """BLB deviations of candidate - baseline: s r values centred on 0 (add the full delta).

    Args:
        y: Labels as float 0/1, one per row.
        score_candidate: Candidate scores, same length.
        score_baseline: Baseline scores for the same rows.
        metric: The metric under row weights (its `prepare` runs once per subset and model).
        plan: From `little_plan`.
        seed: Seed of `numpy.random.default_rng` (which rows form the subsets) and of the
            subsets' own generators (`SeedSequence(seed).spawn`, their weights).

    Returns:
        delta*_jk - delta_j for every subset j and resample k, subset by subset (NaN where the
        metric is undefined on a resample, as in the row bootstrap).
    """
    n = y.size
    scores = (score_candidate, score_baseline)
    prepare = metric.prepare if metric.means is None else metric.means
    full = None
    if metric.means is not None:  # the full data's means, where `from_means` is applied
        full = [metric.means(y, s)(np.ones((1, n)))[0] for s in scores]
    rng = np.random.default_rng(seed)
    subsets = rng.choice(n, plan.subsets * plan.size, replace=False).reshape(plan.subsets, -1)
    everyone = np.ones((1, plan.size))

    def deviations(rows: np.ndarray, weights_rng: np.random.Generator) -> np.ndarray:
        rows = np.sort(rows)  # keep the data's row order (the metric's tie-breaking)
        on = [prepare(y[rows], s[rows]) for s in scores]
        weights = weights_rng.poisson(n / plan.size, size=(plan.resamples, plan.size))
        if full is None:
            centre = on[0](everyone)[0] - on[1](everyone)[0]
            return on[0](weights) - on[1](weights) - centre
        # the means' errors on the subset, added to the full data's means
        value = [
            metric.from_means(f + m(weights) - m(everyone)) for f, m in zip(full, on, strict=True)
        ]
        centre = metric.from_means(full[0][None]) - metric.from_means(full[1][None])
        return value[0] - value[1] - centre

    # Each subset draws its weights from its own generator, so the result does not depend on
    # how many threads run the subsets; numpy's sampling and array work release the GIL.
    generators = [
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(subsets))
    ]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return np.concatenate(list(pool.map(deviations, subsets, generators)))
