"""What the canary's anytime-valid tests share: the result of a look, checks, the decision.

`ml_release.stats.sequential` (error rates: beta-binomial mixtures), `sequential_means`
(means: the asymptotic normal mixture) and `stratified` (a contrast averaged within traffic
steps) build their intervals differently and decide the same way (`decide_look`); the mixture
is tuned with `mixture_rho2`. The method and its references: the docstring of
`ml_release.stats.sequential` and docs/statistics.md.
"""

import math
from dataclasses import dataclass

from ml_release.gates.result import Verdict

DEFAULT_TUNED_N = 5000  # requests per arm at which the intervals are tightest
MIN_N = 30  # requests per arm before the asymptotic mean interval is used


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


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or ValueError unless it lies strictly between 0 and 1."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def check_margin(margin: float) -> float:
    """`margin` as a float, or ValueError unless it is finite and >= 0."""
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"the tolerated rise (margin) must be finite and >= 0, got {margin!r}")
    return float(margin)


def mixture_rho2(alpha: float, tuned_n: float) -> float:
    """Prior precision rho^2 of the normal mixture that is tightest after `tuned_n` requests.

    The approximate optimum of Howard et al. (2021) and Waudby-Smith et al. (2024):
    rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / tuned_n.
    """
    if not (math.isfinite(tuned_n) and tuned_n >= 20):
        raise ValueError(f"tuned_n must be at least 20 requests, got {tuned_n!r}")
    budget = 2.0 * math.log(1.0 / alpha)
    return (budget + math.log1p(budget)) / float(tuned_n)


def decide_look(
    kind: str,
    lower: float,
    upper: float,
    margin: float,
    alpha: float,
    final: bool,
    contrast: str,
    numbers: str,
) -> tuple[Verdict, str]:
    """One look's verdict on the interval of the contrast, and its sentence for people.

    `fail` when the interval lies above `margin`; `pass` below it at the final look only;
    otherwise `inconclusive` (continue, before the final look).
    """
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
