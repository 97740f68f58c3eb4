"""Anytime-valid comparison of two arms step by step, for traffic that drifts over time.

A canary moves traffic to the candidate in steps (5 % -> 25 % -> 50 % -> 100 %). Logged traffic
is in time order, so the candidate's requests come mostly late and production's mostly early;
pooling each arm over the whole canary compares late traffic with early traffic, and a
time-of-day change in error rate or latency then reads as a difference between the models.
Here the arms are compared **within each step** (same time window, same traffic), and the
steps are combined:

- per step s, the difference of the arms' means d_s and its standard error
  sd_s = sqrt(var_c / n_c + var_p / n_p); for error rates the per-request variance is
  q (1 - q) with q = (e + 1) / (n + 2) on each arm (one error and one success added,
  Agresti & Caffo 2000), so zero errors never give a zero variance;
- z_s(delta) = (d_s - delta) / sd_s is asymptotically standard normal for the true common
  difference delta, whatever the arms' level in that step (the drift cancels);
- S(delta) = sum_s w_s z_s(delta) with fixed weights w_s = sqrt(e_s), e_s = n_c n_p / (n_c +
  n_p) the step's effective requests, is a sum of independent N(0, w_s^2) steps, and the
  normal mixture over its drift (Robbins 1970; Howard et al. 2021) is a test martingale in
  "effective requests" N = sum_s e_s:
  M(delta) = (1 + rho^2 N)^(-1/2) exp(rho^2 S^2 / (2 (1 + rho^2 N))).
  Ville's inequality gives the confidence sequence {delta: |S(delta)| < B(N)},
  B(N)^2 = 2 (1 + rho^2 N) / rho^2 * log(sqrt(1 + rho^2 N) / alpha), which is linear in
  delta: [(A - B) / C, (A + B) / C] with A = sum w_s d_s / sd_s and C = sum w_s / sd_s.

It holds at every look together with probability >= 1 - alpha, like the pooled tests of
`ml_release.stats.sequential`, and is asymptotic like their mean test (running variances stand
in for the true ones). A step counts only when both arms served at least `min_n` requests in it
(the 100 % step, where production serves nothing, never does): which steps count depends on the
traffic plan, never on the outcomes. `rho^2` is tuned for `tuned_n` effective requests, the
plan's total, fixed before the canary starts.
"""

import math
from dataclasses import dataclass

import numpy as np

from ml_release.gates.result import Verdict
from ml_release.stats.anytime import SequentialResult, decide_look, mixture_rho2

MIN_N = 30  # requests per arm in a step before that step counts


@dataclass(frozen=True)
class Stratum:
    """One step of one comparison: each arm's requests, mean and per-request variance."""

    n_c: int
    mean_c: float
    var_c: float
    n_p: int
    mean_p: float
    var_p: float

    @property
    def effective(self) -> float:
        """n_c n_p / (n_c + n_p): the step's weight, in requests of a balanced comparison."""
        total = self.n_c + self.n_p
        return self.n_c * self.n_p / total if total else 0.0


def mean_stratum(x_c: np.ndarray, x_p: np.ndarray) -> Stratum:
    """A step of a per-request metric (log latency, score, loss); NaN-free arrays."""
    x_c, x_p = np.asarray(x_c, dtype=float), np.asarray(x_p, dtype=float)

    def moments(x: np.ndarray) -> tuple[float, float]:
        if x.size == 0:
            return math.nan, math.nan
        return float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else 0.0

    (m_c, v_c), (m_p, v_p) = moments(x_c), moments(x_p)
    return Stratum(x_c.size, m_c, v_c, x_p.size, m_p, v_p)


def rate_stratum(errors_c: int, n_c: int, errors_p: int, n_p: int) -> Stratum:
    """A step of error counts; per-request variance from (e + 1) / (n + 2) on each arm."""

    def arm(errors: int, n: int) -> tuple[float, float]:
        if n == 0:
            return math.nan, math.nan
        q = (errors + 1) / (n + 2)
        return errors / n, q * (1 - q)

    (m_c, v_c), (m_p, v_p) = arm(errors_c, n_c), arm(errors_p, n_p)
    return Stratum(n_c, m_c, v_c, n_p, m_p, v_p)


def stratified_bounds(
    strata: list[Stratum], alpha: float, tuned_n: float, min_n: int = MIN_N
) -> tuple[float, float, float, list[Stratum]]:
    """(estimate, lower, upper, steps used) of the common within-step difference.

    NaN numbers when no step has `min_n` requests on both arms (or any variation).
    """
    used = [
        s for s in strata if min(s.n_c, s.n_p) >= min_n and s.var_c / s.n_c + s.var_p / s.n_p > 0
    ]
    if not used:
        return math.nan, math.nan, math.nan, []
    rho2 = mixture_rho2(alpha, tuned_n)
    d = np.array([s.mean_c - s.mean_p for s in used])
    sd = np.sqrt([s.var_c / s.n_c + s.var_p / s.n_p for s in used])
    e = np.array([s.effective for s in used])
    w = np.sqrt(e)
    a, c, big_n = float(np.sum(w * d / sd)), float(np.sum(w / sd)), float(e.sum())
    radius = math.sqrt(
        2.0 * (1.0 + rho2 * big_n) / rho2 * math.log(math.sqrt(1.0 + rho2 * big_n) / alpha)
    )
    return a / c, (a - radius) / c, (a + radius) / c, used


def stratified_sequence(
    kind: str,
    strata: list[Stratum],
    margin: float,
    alpha: float,
    final: bool,
    *,
    tuned_n: float,
    two_sided: bool = False,
    min_n: int = MIN_N,
) -> SequentialResult:
    """One look of a within-step comparison, lower is better (or both ways with `two_sided`).

    One-sided: `fail` when the interval of candidate - production lies above `margin`, `pass`
    (final look only) when it lies below. Two-sided (a shift either way is bad): `fail` when
    the interval lies beyond +-`margin`, `pass` (final look) when it lies within.

    Args:
        kind: What is compared, for the reason ("error rate", "mean log latency", ...).
        strata: One `Stratum` per step so far, in order.
        margin: Tolerated difference (>= 0), in the metric's units.
        alpha: This comparison's share of the canary's false-abort bound.
        final: Whether this is the last look; only then can it pass.
        tuned_n: Effective requests the plan expects over its steps (fixed in advance).
        two_sided: Judge |difference| against the margin.
        min_n: Requests per arm in a step before the step counts.
    """
    estimate, lower, upper, used = stratified_bounds(strata, alpha, tuned_n, min_n)
    n_c, n_p = sum(s.n_c for s in used), sum(s.n_p for s in used)
    method = f"stratified_normal_mixture(steps={len(used)}, tuned_n={tuned_n:g})"
    common = dict(
        margin=margin,
        candidate=_pooled(used, "c"),
        production=_pooled(used, "p"),
        n_candidate=n_c,
        n_production=n_p,
        alpha=alpha,
        final=bool(final),
        method=method,
    )
    if not used:
        reason = (
            f"{kind}: no step yet with {min_n} requests on both arms (the arms are compared "
            "within each step); no comparison"
        )
        return SequentialResult(
            Verdict.INCONCLUSIVE, reason, math.nan, math.nan, math.nan, **common
        )
    numbers = f"within-step difference over {len(used)} step(s), {n_c} vs {n_p} requests"
    if not two_sided:
        decision, reason = decide_look(
            kind, lower, upper, margin, alpha, final, "difference", numbers
        )
    else:
        decision, reason = _two_sided(kind, lower, upper, margin, alpha, final, numbers)
    return SequentialResult(decision, reason, estimate, lower, upper, **common)


def _pooled(used: list[Stratum], arm: str) -> float:
    n = [getattr(s, f"n_{arm}") for s in used]
    means = [getattr(s, f"mean_{arm}") for s in used]
    return float(np.average(means, weights=n)) if sum(n) else math.nan


def _two_sided(
    kind: str, lower: float, upper: float, margin: float, alpha: float, final: bool, numbers: str
) -> tuple[Verdict, str]:
    interval = f"{numbers}; {1 - alpha:.4g} anytime interval [{lower:.4g}, {upper:.4g}]"
    if lower > margin or upper < -margin:
        return Verdict.FAIL, f"{kind}: {interval} lies beyond the tolerated shift of +-{margin:.4g}"
    if -margin <= lower and upper <= margin:
        if final:
            return Verdict.PASS, f"{kind}: {interval} lies within +-{margin:.4g}"
        return Verdict.INCONCLUSIVE, (
            f"{kind}: {interval} lies within +-{margin:.4g} so far; a pass is only given at the "
            "final look: continue"
        )
    says = "cannot tell" if final else "continue"
    return Verdict.INCONCLUSIVE, f"{kind}: {interval} straddles +-{margin:.4g}: {says}"
