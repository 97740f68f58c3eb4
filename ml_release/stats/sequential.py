"""Anytime-valid comparisons of a canary with production, for an analysis repeated at every look.

A canary moves traffic to the candidate in steps, and the controller compares the two arms on
everything each has served so far after every step (or every analysis interval). A
fixed-sample interval read at every look is wrong more often than its level says: the
chance that it ever excludes the truth grows with the number of looks. The intervals here
are **confidence sequences**: with probability at least 1 - alpha they hold at every look
at once, however many looks there are and whenever the controller stops. So an abort
(`fail`) based on them is false with probability at most alpha over the whole canary.

Both tests combine one mixture martingale per arm (Ville's inequality; Robbins 1970,
Howard et al. 2021). For true values (a, b) of the two arms, M_c(a) * M_p(b) is a test
martingale, whatever the traffic split at each step, including steps where one arm gets no
new requests. The joint confidence region is {(a, b): log M_c(a) + log M_p(b) < log(1/alpha)}.
The interval for a contrast (a - b, or a / b - 1) is its projection onto that contrast.

- `error_rate_sequence` / `error_rate_bounds`: two binomial streams, errors out of requests.
  Each arm's martingale is the beta-binomial mixture of likelihood ratios (Howard et al. 2021,
  sub-Bernoulli case), with a Beta prior centred on the tested rate. It is exact at every
  sample size and every rate, with no normal approximation, so it stays valid for rare
  errors (0.1 %-1 %) and for zero errors. It needs only the cumulative counts.
- `mean_sequence` / `mean_bounds`: the mean of a per-request metric (log-latency, per-request
  loss), by the asymptotic confidence sequence of Waudby-Smith et al. (2024): a normal mixture
  with each arm's running sample variance. It is valid in the limit of many requests (at
  least `min_n` per arm before any decision), like a t interval, and the margin may be
  absolute or a share of production's mean.

Decision for a lower-is-better quantity (error rate, latency, loss), with [lower, upper] the
interval of candidate - production (or candidate / production - 1) and `margin` the tolerated
rise:

- `fail` when lower > margin: confidently worse than allowed; abort at any look.
- `pass` when upper < margin, at the final look only (`final=True`); before it, a look that
  is not `fail` means continue.
- `inconclusive` otherwise, and always when an arm has no data (or, for means, fewer than
  `min_n` requests); `reason` says which.

Inputs are cumulative up to the current look. Keep `alpha` and `tuned_n` fixed for the whole
canary. Formulas and references: docs/statistics.md ("Sequential tests for canaries").
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, expit, log_expit

from ml_release.gates.result import Verdict

DEFAULT_TUNED_N = 5000  # requests per arm at which the intervals are tightest
MIN_N = 30  # requests per arm before the asymptotic mean interval is used
_Z_EDGE = 30.0  # log-odds searched: rates in [9.4e-14, 1 - 9.4e-14]; beyond, the set is open
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0
_GOLDEN_STEPS = 64  # golden-section steps for an arm's minimum: width 60 * 0.618^64 < 1e-11
_BISECTION_STEPS = 44  # per endpoint: log-odds resolution 30 / 2^44 < 2e-12
_GRID = 512  # steps per branch of an arm's set of plausible rates


@dataclass(frozen=True)
class SequentialResult:
    """One look of a canary analysis: candidate vs production on all requests so far.

    Attributes:
        decision: `fail` (abort), `pass` (only at the final look) or `inconclusive`.
        reason: One sentence for people, with the interval and the margin.
        estimate: Point estimate of the contrast: candidate - production (`contrast`
            `difference`) or candidate / production - 1 (`relative`).
        lower: Lower end of the anytime-valid interval of the contrast.
        upper: Upper end of that interval.
        margin: Tolerated rise of the contrast, in its units.
        candidate: Candidate's error rate or mean so far.
        production: Production's error rate or mean so far.
        n_candidate: Requests of the candidate so far.
        n_production: Requests of production so far.
        alpha: The interval holds at all looks together with probability >= 1 - alpha.
        final: Whether this was the final look (the only one that can pass).
        method: `beta_binomial_mixture(tuned_n=...)` or `asymptotic_normal_mixture(tuned_n=...)`.
        contrast: `difference` or `relative`.
    """

    decision: Verdict
    reason: str
    estimate: float
    lower: float
    upper: float
    margin: float
    candidate: float
    production: float
    n_candidate: int
    n_production: int
    alpha: float
    final: bool
    method: str
    contrast: str = "difference"

    @property
    def abort(self) -> bool:
        """Whether the canary should be stopped and rolled back now."""
        return self.decision == Verdict.FAIL


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def _check_margin(margin: float) -> float:
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"the tolerated rise (margin) must be finite and >= 0, got {margin!r}")
    return float(margin)


def _mixture_rho2(alpha: float, tuned_n: float) -> float:
    """Prior precision rho^2 of the normal mixture that is tightest after `tuned_n` requests.

    The approximate optimum of Howard et al. (2021) and Waudby-Smith et al. (2024):
    rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / tuned_n.
    """
    if not (math.isfinite(tuned_n) and tuned_n >= 20):
        raise ValueError(f"tuned_n must be at least 20 requests, got {tuned_n!r}")
    budget = 2.0 * math.log(1.0 / alpha)
    return (budget + math.log1p(budget)) / float(tuned_n)


def _decide(
    kind: str,
    lower: float,
    upper: float,
    margin: float,
    alpha: float,
    final: bool,
    contrast: str,
    numbers: str,
) -> tuple[Verdict, str]:
    what = "relative change" if contrast == "relative" else "difference"
    interval = (
        f"{numbers}; {1 - alpha:.4g} anytime interval of the {what} [{lower:.4g}, {upper:.4g}]"
    )
    rise = f"the tolerated rise of {margin:.4g}"
    if lower > margin:
        return Verdict.FAIL, f"{kind}: {interval} lies entirely above {rise}: abort"
    if upper < margin:
        if final:
            return Verdict.PASS, f"{kind}: {interval} lies entirely below {rise}"
        says = "so far; a pass is only given at the final look: continue"
        return Verdict.INCONCLUSIVE, f"{kind}: {interval} lies below {rise} {says}"
    if final:
        return Verdict.INCONCLUSIVE, f"{kind}: {interval} straddles {rise}: cannot tell"
    return Verdict.INCONCLUSIVE, f"{kind}: {interval} straddles {rise}: continue"


# --- error rates: beta-binomial mixtures -------------------------------------------------------


def _arm_log_e(z: np.ndarray, errors: np.ndarray, n: np.ndarray, kappa: float) -> np.ndarray:
    """The log of M(p), the beta-binomial mixture martingale of one arm, at rate p = expit(z).

    M(p) = B(kp + e, k(1 - p) + n - e) / B(kp, k(1 - p)) / (p^e (1 - p)^(n - e)): the likelihood
    ratio of a rate q against p, averaged over q ~ Beta(kp, k(1 - p)) (mean p). Quasi-convex in
    p, with minimum <= 0 near e / n; log-odds keep the precision near 0 and 1.
    """
    p, q = expit(z), expit(-z)
    mixture = betaln(kappa * p + errors, kappa * q + n - errors) - betaln(kappa * p, kappa * q)
    return mixture - errors * log_expit(z) - (n - errors) * log_expit(-z)


def _arm_minimum(errors: np.ndarray, n: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds of each arm's minimum of log M and the minimum, by vectorized golden section."""
    lo, hi = np.full(errors.shape, -_Z_EDGE), np.full(errors.shape, _Z_EDGE)
    x1, x2 = hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo)
    f1, f2 = _arm_log_e(x1, errors, n, kappa), _arm_log_e(x2, errors, n, kappa)
    for _ in range(_GOLDEN_STEPS):
        left = f1 <= f2  # the minimum lies in [lo, x2]
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        new = np.where(left, hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo))
        f_new = _arm_log_e(new, errors, n, kappa)
        x1, f1, x2, f2 = (
            np.where(left, new, x2),
            np.where(left, f_new, f2),
            np.where(left, x1, new),
            np.where(left, f1, f_new),
        )
    edge = np.full(errors.shape, _Z_EDGE)
    points = np.stack([x1, x2, -edge, edge])
    values = np.stack(
        [f1, f2, _arm_log_e(-edge, errors, n, kappa), _arm_log_e(edge, errors, n, kappa)]
    )
    best = values.argmin(axis=0)[None]
    return np.take_along_axis(points, best, 0)[0], np.take_along_axis(values, best, 0)[0]


def _level_end(
    z_min: np.ndarray,
    side: np.ndarray,
    level: np.ndarray,
    errors: np.ndarray,
    n: np.ndarray,
    kappa: float,
) -> np.ndarray:
    """The rate where an arm's set {p: log M(p) <= level} ends, on the side -1 (low) or +1.

    Bisection between the minimum (inside) and the edge of the search (outside); the outer
    point of the final bracket is returned, so the set is never reported smaller than it is.
    A set that reaches the edge ends at rate 0 or 1.
    """
    z_min, side, level, errors, n = np.broadcast_arrays(z_min, side, level, errors, n)
    outside = side * _Z_EDGE
    open_end = _arm_log_e(outside, errors, n, kappa) <= level
    inside = z_min.copy()
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (inside + outside)
        ok = _arm_log_e(mid, errors, n, kappa) <= level
        inside, outside = np.where(ok, mid, inside), np.where(ok, outside, mid)
    return np.where(open_end, (side > 0).astype(float), expit(outside))


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.clip(np.log(p) - np.log1p(-p), -_Z_EDGE, _Z_EDGE)


def _last_at_most(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Per row of a batch: how many of the row's sorted values are <= each query."""
    flat_rows = rows.reshape(-1, rows.shape[-1])
    flat_queries = queries.reshape(-1, queries.shape[-1])
    counts = [
        np.searchsorted(r, q, side="right") for r, q in zip(flat_rows, flat_queries, strict=True)
    ]
    return np.asarray(counts).reshape(queries.shape)


def _difference_region(
    errors: np.ndarray, n: np.ndarray, alpha: float, kappa: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of p_c - p_p over {log M_c(p_c) + log M_p(p_p) < log(1/alpha)}; arms on axis -1.

    Each arm's log M is quasi-convex in p: it falls to its minimum m near e / n, then rises.
    Arm c can only take rates where log M_c <= tau - m_p (tau = log(1/alpha)), an interval
    found by bisection; each side of the minimum (a branch) is cut into `_GRID` steps.

    Lower bound: a candidate rate a in the step [q_k, q_k+1] of its falling branch has
    log M_c(a) >= log M_c(q_k+1), so production's rate is at most the end of its set at level
    tau - log M_c(q_k+1); a - b is then at least q_k minus that end. The minimum over the steps,
    with production's end rounded outwards to its own grid, is never above the exact bound.
    Running minima of log M along each branch (from its outer end) stand in for log M, so a
    wobble of the floating-point values cannot shrink a set. The upper bound is the mirror.
    """
    tau = math.log(1.0 / alpha)
    z_min, m = _arm_minimum(errors, n, kappa)
    p_min = expit(z_min)
    top = tau - m[..., ::-1]  # highest level each arm can use: tau minus the other's minimum
    ends = [_level_end(z_min, side, top, errors, n, kappa) for side in (-1.0, 1.0)]
    steps = np.linspace(0.0, 1.0, _GRID + 1)
    falling = ends[0][..., None] + (p_min - ends[0])[..., None] * steps  # outer end .. minimum
    rising = p_min[..., None] + (ends[1] - p_min)[..., None] * steps  # minimum .. outer end
    e, r = errors[..., None], n[..., None]
    # running minima from each branch's outer end: non-increasing, then non-decreasing
    fall = np.minimum.accumulate(_arm_log_e(_logit(falling), e, r, kappa), axis=-1)
    rise = np.minimum.accumulate(_arm_log_e(_logit(rising), e, r, kappa)[..., ::-1], axis=-1)
    rise = rise[..., ::-1]
    last = _GRID

    # lower: candidate on its falling branch, production at the high end of its set
    level = tau - fall[..., 0, 1:]  # production's level for candidate step k: tau - M_c(q_k+1)
    count = _last_at_most(rise[..., 1, :], level)  # rising grid points of production within
    b_high = np.take_along_axis(rising[..., 1, :], np.minimum(count, last), -1)  # one step out
    cells = np.where(count > 0, falling[..., 0, :-1] - b_high, np.inf)
    lower = cells.min(axis=-1)

    # upper: candidate on its rising branch, production at the low end of its set
    level = tau - rise[..., 0, :-1]  # candidate step [r_k, r_k+1] has M_c >= M_c(r_k)
    outside = last + 1 - _last_at_most(fall[..., 1, ::-1], level)  # falling points above it
    b_low = np.take_along_axis(falling[..., 1, :], np.maximum(outside - 1, 0), -1)
    cells = np.where(outside <= last, rising[..., 0, 1:] - b_low, -np.inf)
    upper = cells.max(axis=-1)
    return lower, upper


def _as_counts(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(f"{name} must be whole numbers >= 0, got {values!r}")
    return array


def error_rate_bounds(
    errors_c, n_c, errors_p, n_p, alpha: float = 0.05, *, tuned_n: float = DEFAULT_TUNED_N
) -> tuple[np.ndarray, np.ndarray]:
    """Anytime-valid interval of p_c - p_p for many looks or canaries at once (vectorized).

    Inputs broadcast together (scalars or arrays of cumulative counts). Where an arm has no
    requests the bounds are NaN. `error_rate_sequence` is this plus the decision.

    Args:
        errors_c: Candidate errors so far.
        n_c: Candidate requests so far.
        errors_p: Production errors so far.
        n_p: Production requests so far.
        alpha: Probability that the interval ever misses the true difference, over all looks.
        tuned_n: Requests per arm at which the interval is tightest: the expected count per arm
            at the final look. Any fixed value keeps the guarantee; do not change it mid-canary.

    Returns:
        (lower, upper) arrays of the broadcast shape.

    Raises:
        ValueError: Counts that are negative, not whole, or errors above requests.
    """
    alpha = _check_alpha(alpha)
    e_c, r_c = _as_counts("errors_c", errors_c), _as_counts("n_c", n_c)
    e_p, r_p = _as_counts("errors_p", errors_p), _as_counts("n_p", n_p)
    e_c, r_c, e_p, r_p = np.broadcast_arrays(e_c, r_c, e_p, r_p)
    if np.any(e_c > r_c) or np.any(e_p > r_p):
        raise ValueError("errors cannot exceed requests on either arm")
    kappa = 1.0 / _mixture_rho2(alpha, tuned_n) - 1.0  # prior Beta(kp, k(1-p)): var p(1-p)rho^2
    lower, upper = _difference_region(
        np.stack([e_c, e_p], -1), np.stack([r_c, r_p], -1), alpha, kappa
    )
    empty = (r_c == 0) | (r_p == 0)
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def error_rate_sequence(
    errors_c: int,
    n_c: int,
    errors_p: int,
    n_p: int,
    margin: float,
    alpha: float = 0.05,
    final: bool = False,
    *,
    tuned_n: float = DEFAULT_TUNED_N,
) -> SequentialResult:
    """One look of the error-rate comparison: abort, continue, or (at the final look) pass.

    Tests the candidate's error rate against production's with a tolerated absolute rise:
    fail when the anytime interval of p_c - p_p lies above `margin`. Exact for any rate, any
    counts and any number of looks (beta-binomial mixtures; module docstring).

    Args:
        errors_c: Candidate errors so far (cumulative).
        n_c: Candidate requests so far.
        errors_p: Production errors so far, over the same period.
        n_p: Production requests so far.
        margin: Tolerated rise of the error rate, absolute (0.005 = half a percentage point).
        alpha: Probability of a false abort (or a false pass) over all looks together.
        final: Whether this is the last look; only then can the result be `pass`.
        tuned_n: Expected requests per arm at the final look (see `error_rate_bounds`).

    Returns:
        The result; `inconclusive` with the reason when an arm has no requests.
    """
    alpha, margin = _check_alpha(alpha), _check_margin(margin)
    method = f"beta_binomial_mixture(tuned_n={tuned_n:g})"
    lower, upper = (
        float(b) for b in error_rate_bounds(errors_c, n_c, errors_p, n_p, alpha, tuned_n=tuned_n)
    )
    rate_c = errors_c / n_c if n_c else math.nan
    rate_p = errors_p / n_p if n_p else math.nan
    common = dict(
        margin=margin,
        candidate=rate_c,
        production=rate_p,
        n_candidate=int(n_c),
        n_production=int(n_p),
        alpha=alpha,
        final=bool(final),
        method=method,
    )
    if n_c == 0 or n_p == 0:
        arm = "candidate" if n_c == 0 else "production"
        reason = f"error rate: no requests on the {arm} arm yet; no comparison"
        nan = math.nan
        return SequentialResult(Verdict.INCONCLUSIVE, reason, nan, nan, nan, **common)
    numbers = f"{errors_c}/{n_c} = {rate_c:.4g} vs {errors_p}/{n_p} = {rate_p:.4g}"
    decision, reason = _decide(
        "error rate", lower, upper, margin, alpha, final, "difference", numbers
    )
    return SequentialResult(decision, reason, rate_c - rate_p, lower, upper, **common)


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
    alpha = _check_alpha(alpha)
    rho2 = _mixture_rho2(alpha, tuned_n)
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
    alpha, margin = _check_alpha(alpha), _check_margin(margin)
    x_c, x_p = _as_sample("x_c", x_c), _as_sample("x_p", x_p)
    n_c, n_p = x_c.size, x_p.size
    method = f"asymptotic_normal_mixture(tuned_n={tuned_n:g})"
    contrast = "relative" if relative else "difference"
    mean_c = float(x_c.mean()) if n_c else math.nan
    mean_p = float(x_p.mean()) if n_p else math.nan
    common = dict(
        margin=margin,
        candidate=mean_c,
        production=mean_p,
        n_candidate=n_c,
        n_production=n_p,
        alpha=alpha,
        final=bool(final),
        method=method,
        contrast=contrast,
    )
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
    decision, reason = _decide("mean", lower, upper, margin, alpha, final, contrast, numbers)
    return SequentialResult(decision, reason, estimate, lower, upper, **common)
