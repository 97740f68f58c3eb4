"""The canary's anytime-valid comparison of means (log-latency, per-request loss).

The asymptotic confidence sequence of Waudby-Smith et al. (2024): a normal mixture with each
arm's running sample variance, valid in the limit of many requests (at least `min_n` per arm
before any decision). See `ml_release.stats.sequential` for the shared decision rule and
docs/statistics.md for the formulas.
"""

import math

import numpy as np

from ml_release.gates.result import Verdict
from ml_release.stats.anytime import (
    DEFAULT_TUNED_N,
    MIN_N,
    SequentialResult,
    check_alpha,
    check_margin,
    decide_look,
    mixture_rho2,
)

# --- means: asymptotic normal mixtures ---------------------------------------------------------


def mean_bounds(
    n_c,
    mean_c,
    var_c,
    n_p,
    mean_p,
    var_p,
    alpha: float = 0.05,
    *,
    relative: bool = False,
    tuned_n: float = DEFAULT_TUNED_N,
) -> tuple[np.ndarray, np.ndarray]:
    """Anytime-valid interval of mu_c - mu_p (or mu_c / mu_p - 1) from each arm's moments.

    Vectorized over looks or canaries: inputs broadcast together. Per arm, with n requests,
    sample mean m and sample variance s^2, and rho^2 from `tuned_n`, the asymptotic confidence
    sequence of Waudby-Smith et al. (2024) is the set where
    n^2 rho^2 (m - mu)^2 / (2 s^2 (1 + n rho^2)) - log(1 + n rho^2) / 2 < budget.
    Both arms share the budget log(1/alpha): their sum must stay below it (one product
    martingale), an ellipse in (mu_c, mu_p) whose projection gives the bounds. The relative
    bounds are the ratios on that ellipse (Fieller's construction), NaN unless the ellipse lies
    at mu_p > 0. Arms with fewer than 2 requests give NaN.

    Args:
        n_c: Candidate requests so far.
        mean_c: Candidate mean of the metric.
        var_c: Candidate sample variance (ddof=1).
        n_p: Production requests so far.
        mean_p: Production mean.
        var_p: Production sample variance (ddof=1).
        alpha: Probability that the interval ever misses the truth, over all looks.
        relative: Bounds of mu_c / mu_p - 1 instead of mu_c - mu_p.
        tuned_n: Requests per arm at which the interval is tightest (see `error_rate_bounds`).

    Returns:
        (lower, upper) arrays of the broadcast shape.
    """
    alpha = check_alpha(alpha)
    rho2 = mixture_rho2(alpha, tuned_n)
    n_c, mean_c, var_c, n_p, mean_p, var_p = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (n_c, mean_c, var_c, n_p, mean_p, var_p))
    )
    enough = (n_c >= 2) & (n_p >= 2)
    n_c, n_p = np.where(enough, n_c, 2.0), np.where(enough, n_p, 2.0)
    # per arm: the mixture's spread 1/w = s^2 (1 + n rho^2) / (n^2 rho^2) and penalty
    spread_c = var_c * (1.0 + n_c * rho2) / (n_c**2 * rho2)
    spread_p = var_p * (1.0 + n_p * rho2) / (n_p**2 * rho2)
    radius2 = 2.0 * (
        math.log(1.0 / alpha) + 0.5 * np.log1p(n_c * rho2) + 0.5 * np.log1p(n_p * rho2)
    )
    if not relative:
        half = np.sqrt(radius2 * (spread_c + spread_p))
        lower, upper = mean_c - mean_p - half, mean_c - mean_p + half
    else:
        # ratios s = mu_c / mu_p on the ellipse: (m_c - s m_p)^2 <= R (spread_c + s^2 spread_p)
        a = mean_p**2 - radius2 * spread_p
        b = mean_c * mean_p
        c = mean_c**2 - radius2 * spread_c
        bounded = (a > 0) & (mean_p > 0)
        a_safe = np.where(bounded, a, 1.0)
        root = np.sqrt(np.maximum(b**2 - a_safe * c, 0.0))
        lower = np.where(bounded, (b - root) / a_safe - 1.0, np.nan)
        upper = np.where(bounded, (b + root) / a_safe - 1.0, np.nan)
    return np.where(enough, lower, np.nan), np.where(enough, upper, np.nan)


def _as_sample(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-request values, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity; clip or drop those requests first")
    return array


def mean_sequence(
    x_c: np.ndarray,
    x_p: np.ndarray,
    margin: float,
    alpha: float = 0.05,
    final: bool = False,
    *,
    relative: bool = False,
    tuned_n: float = DEFAULT_TUNED_N,
    min_n: int = MIN_N,
) -> SequentialResult:
    """One look of the comparison of a per-request metric's mean, lower is better.

    For latency pass log-latency (`np.log(latency_ms)`) with `margin=math.log(1 + r)`: the gate
    then reads the ratio of geometric means, tolerating a slowdown of r. For per-request loss
    pass the losses with an absolute margin, or `relative=True` for a share of production's
    mean loss. Negate a metric where greater is better. Asymptotic (module docstring): no
    decision before `min_n` requests on each arm.

    Args:
        x_c: Candidate's per-request values so far (cumulative).
        x_p: Production's per-request values over the same period.
        margin: Tolerated rise: absolute in metric units, or a share of production's mean when
            `relative` (0.05 = 5 % worse).
        alpha: Probability of a false abort (or a false pass) over all looks together.
        final: Whether this is the last look; only then can the result be `pass`.
        relative: Compare mu_c / mu_p - 1 with the margin (positive metrics only).
        tuned_n: Expected requests per arm at the final look (see `error_rate_bounds`).
        min_n: Requests per arm before any decision.

    Returns:
        The result; `inconclusive` with the reason when an arm has fewer than `min_n` requests,
        when both arms are constant, or when a relative interval is unbounded.

    Raises:
        ValueError: Values that are not a finite 1-D array, or a negative margin.
    """
    alpha, margin = check_alpha(alpha), check_margin(margin)
    x_c, x_p = _as_sample("x_c", x_c), _as_sample("x_p", x_p)
    n_c, n_p = x_c.size, x_p.size
    contrast = "relative" if relative else "difference"
    mean_c = float(x_c.mean()) if n_c else math.nan
    mean_p = float(x_p.mean()) if n_p else math.nan
    common = dict(
        margin=margin, candidate=mean_c, production=mean_p, n_candidate=n_c, n_production=n_p,
        alpha=alpha, final=bool(final), contrast=contrast,
        method=f"asymptotic_normal_mixture(tuned_n={tuned_n:g})",
    )  # fmt: skip
    nan = math.nan

    def inconclusive(why: str) -> SequentialResult:
        return SequentialResult(Verdict.INCONCLUSIVE, f"mean: {why}", nan, nan, nan, **common)

    if min(n_c, n_p) < max(min_n, 2):
        arm, n = ("candidate", n_c) if n_c < max(min_n, 2) else ("production", n_p)
        what = "no requests" if n == 0 else f"{n} requests, fewer than min_n={max(min_n, 2)},"
        return inconclusive(f"{what} on the {arm} arm; no comparison yet")
    var_c, var_p = float(x_c.var(ddof=1)), float(x_p.var(ddof=1))
    if var_c == 0 and var_p == 0:
        return inconclusive("both arms are constant; the asymptotic interval needs variation")
    lower, upper = (
        float(b)
        for b in mean_bounds(
            n_c, mean_c, var_c, n_p, mean_p, var_p, alpha, relative=relative, tuned_n=tuned_n
        )
    )
    estimate = mean_c / mean_p - 1.0 if relative else mean_c - mean_p
    if relative and not math.isfinite(lower):
        return inconclusive(
            f"production's mean {mean_p:.4g} is not confidently above 0; no relative interval"
        )
    numbers = f"{mean_c:.4g} vs {mean_p:.4g} (n = {n_c} vs {n_p})"
    decision, reason = decide_look("mean", lower, upper, margin, alpha, final, contrast, numbers)
    return SequentialResult(decision, reason, estimate, lower, upper, **common)
