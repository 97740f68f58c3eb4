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

import numpy as np
from scipy.special import betaln, expit, log_expit

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

_Z_EDGE = 30.0  # log-odds searched: rates in [9.4e-14, 1 - 9.4e-14]; beyond, the set is open
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0
_GOLDEN_STEPS = 64  # golden-section steps for an arm's minimum: width 60 * 0.618^64 < 1e-11
_BISECTION_STEPS = 44  # per endpoint: log-odds resolution 30 / 2^44 < 2e-12
_GRID = 512  # steps per branch of an arm's set of plausible rates


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
    alpha = check_alpha(alpha)
    e_c, r_c = _as_counts("errors_c", errors_c), _as_counts("n_c", n_c)
    e_p, r_p = _as_counts("errors_p", errors_p), _as_counts("n_p", n_p)
    e_c, r_c, e_p, r_p = np.broadcast_arrays(e_c, r_c, e_p, r_p)
    if np.any(e_c > r_c) or np.any(e_p > r_p):
        raise ValueError("errors cannot exceed requests on either arm")
    kappa = 1.0 / mixture_rho2(alpha, tuned_n) - 1.0  # prior Beta(kp, k(1-p)): var p(1-p)rho^2
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
    alpha, margin = check_alpha(alpha), check_margin(margin)
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
    decision, reason = decide_look(
        "error rate", lower, upper, margin, alpha, final, "difference", numbers
    )
    return SequentialResult(decision, reason, rate_c - rate_p, lower, upper, **common)


# The mean test lives in sequential_means; imported here so callers find both in one place.
from ml_release.stats.sequential_means import mean_bounds, mean_sequence  # noqa: E402

__all__ = [
    "DEFAULT_TUNED_N",
    "MIN_N",
    "SequentialResult",
    "error_rate_bounds",
    "error_rate_sequence",
    "mean_bounds",
    "mean_sequence",
]
