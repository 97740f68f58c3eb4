"""From a paired comparison to a gate verdict: pass, fail or inconclusive.

The gate tolerates a worsening of the candidate up to a margin (`max_drop`, absolute, or
`max_relative_drop`, a share of the baseline). For a metric where greater is better, with
[low, high] the interval for delta = candidate - baseline at the configured confidence:

- fail when high < -margin: the data show, at that confidence, a drop beyond the margin;
- pass when low >= -margin: the data show the drop, if any, is within the margin;
- inconclusive otherwise: the interval straddles -margin and we cannot tell.

Lower-is-better metrics (log loss, Brier, ECE) mirror this around +margin. What blocks is the
test of H0: "the candidate is within the margin" (delta >= -margin); rejecting it is a fail. Its
one-sided p-value is `p_worse`. The mirror test, H0: delta <= -margin (non-inferiority), decides
pass versus inconclusive and never blocks by itself. Too little support or an undefined metric
is inconclusive with the reason; what an inconclusive does (block or warn) is a spec setting.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from ml_release.gates.result import Direction, Verdict
from ml_release.stats.multiple import holm, simultaneous_confidence
from ml_release.stats.paired import Comparison


@dataclass(frozen=True)
class Decision:
    """A verdict on one comparison and why.

    Attributes:
        verdict: pass, fail or inconclusive.
        reason: One sentence for people, with the interval and the margin.
        direction: `higher_is_better` or `lower_is_better`.
        margin: Tolerated worsening in metric units (>= 0), when one was computed.
        bound: The delta beyond which the candidate is worse than allowed (-margin or +margin).
        interval: (low, high) of delta = candidate - baseline.
        confidence: Coverage of the interval.
        p_worse: One-sided p-value of H0 "within the margin"; small means confidently worse.
            None when the comparison has neither a standard error nor bootstrap draws.
        p_worse_adjusted: `p_worse` Holm-adjusted across the segments of one gate.
    """

    verdict: Verdict
    reason: str
    direction: Direction
    margin: float | None = None
    bound: float | None = None
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    p_worse: float | None = None
    p_worse_adjusted: float | None = None


def tolerated_margin(
    baseline: float, max_drop: float | None = None, max_relative_drop: float | None = None
) -> float:
    """The tolerated worsening in metric units: `max_drop`, or `max_relative_drop` x |baseline|.

    Raises:
        ValueError: Unless exactly one of the two is given, and it is >= 0.
    """
    if (max_drop is None) == (max_relative_drop is None):
        raise ValueError(
            "give exactly one of max_drop (absolute, e.g. 0.01 AUC) or max_relative_drop "
            f"(share of the baseline, e.g. 0.02); got {max_drop=} and {max_relative_drop=}"
        )
    margin = max_drop if max_drop is not None else max_relative_drop * abs(baseline)
    if not margin >= 0:
        raise ValueError(f"the tolerated drop must be >= 0, got {margin}")
    return float(margin)


def p_worse_than_margin(comparison: Comparison, margin: float, greater_is_better: bool) -> float:
    """One-sided p-value of H0: the candidate is within the margin, against H1: it is worse.

    For greater-is-better metrics H0 is delta >= -margin; mirrored otherwise. From the normal
    or t reference of a standard error, or from bootstrap draws as (1 + #{draws in H0}) / (B + 1).
    """
    sign = 1.0 if greater_is_better else -1.0
    if comparison.draws is not None:
        draws = sign * comparison.draws[np.isfinite(comparison.draws)]
        return float((1 + np.sum(draws >= -margin)) / (draws.size + 1))
    if comparison.std_error is None:
        raise ValueError(f"{comparison.method} comparison has no standard error and no draws")
    distance = sign * comparison.delta + margin  # >= 0 when the estimate is within the margin
    if comparison.std_error == 0:
        return 1.0 if distance >= 0 else 0.0
    dist = stats.norm if comparison.df is None else stats.t(comparison.df)
    return float(dist.cdf(distance / comparison.std_error))


def decide(
    comparison: Comparison,
    *,
    greater_is_better: bool,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    min_support: int = 0,
    support: int | None = None,
) -> Decision:
    """The verdict on one comparison against a tolerated-drop margin.

    Args:
        comparison: Candidate vs baseline with an interval for delta.
        greater_is_better: Direction of the metric; never guessed.
        max_drop: Tolerated worsening in metric units (a drop, or a rise for lower-is-better).
        max_relative_drop: Tolerated worsening as a share of the baseline's value.
        min_support: Support below which no verdict is given.
        support: Rows (or positives) behind the comparison; defaults to `comparison.n`.

    Returns:
        The decision with its reason, interval, margin and one-sided p-value.
    """
    direction: Direction = "higher_is_better" if greater_is_better else "lower_is_better"
    name = comparison.metric
    support = comparison.n if support is None else support
    if support < min_support:
        reason = f"{name}: support {support} is below min_support {min_support}; no verdict"
        return Decision(Verdict.INCONCLUSIVE, reason, direction)
    if not comparison.defined:
        reason = f"{name}: {comparison.undefined_reason or 'the interval is not finite'}"
        return Decision(Verdict.INCONCLUSIVE, reason, direction)
    margin = tolerated_margin(comparison.baseline, max_drop, max_relative_drop)
    low, high = comparison.low, comparison.high
    bound = -margin if greater_is_better else margin
    worse = high < bound if greater_is_better else low > bound
    within = low >= bound if greater_is_better else high <= bound
    change = "drop" if greater_is_better else "rise"
    testable = comparison.std_error is not None or comparison.draws is not None
    interval = (
        f"{name} {comparison.candidate:.4g} vs {comparison.baseline:.4g}; "
        f"{comparison.confidence:.4g} interval of the difference [{low:.4g}, {high:.4g}]"
    )
    if worse:
        verdict, says = Verdict.FAIL, f"lies entirely beyond the tolerated {change} of {margin:.4g}"
    elif within:
        verdict, says = Verdict.PASS, f"lies within the tolerated {change} of {margin:.4g}"
    else:
        verdict = Verdict.INCONCLUSIVE
        says = f"straddles the tolerated {change} of {margin:.4g}: more rows are needed to tell"
    return Decision(
        verdict,
        f"{interval} {says}",
        direction,
        margin,
        bound,
        (low, high),
        comparison.confidence,
        p_worse_than_margin(comparison, margin, greater_is_better) if testable else None,
    )


def decide_segments(
    comparisons: Mapping[str, Comparison],
    *,
    greater_is_better: bool,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    min_support: int = 0,
    supports: Mapping[str, int] | None = None,
    family_confidence: float = 0.95,
) -> dict[str, Decision]:
    """Verdicts for every segment of one gate, with false alarms controlled across segments.

    The family is the m segments that get a pass/fail reading (enough support, defined metric).
    Their intervals must have been computed at `simultaneous_confidence(family_confidence, m)`
    or higher (Bonferroni), so all of them hold together with probability >= family_confidence.
    `p_worse_adjusted` is the Holm adjustment of `p_worse` over the same family.

    Args:
        comparisons: Comparison per segment name.
        greater_is_better: Direction of the metric.
        max_drop: Tolerated worsening in metric units.
        max_relative_drop: Tolerated worsening as a share of each segment's baseline.
        min_support: Support below which a segment is inconclusive and leaves the family.
        supports: Support per segment (rows or positives); defaults to each comparison's n.
        family_confidence: Coverage of all intervals together.

    Returns:
        Decision per segment, in the order given.

    Raises:
        ValueError: An interval of the family is narrower than the family requires.
    """
    supports = supports or {}
    decisions = {
        name: decide(
            comparison,
            greater_is_better=greater_is_better,
            max_drop=max_drop,
            max_relative_drop=max_relative_drop,
            min_support=min_support,
            support=supports.get(name),
        )
        for name, comparison in comparisons.items()
    }
    family = [name for name, d in decisions.items() if d.margin is not None]
    if not family:
        return decisions
    needed = simultaneous_confidence(family_confidence, len(family))
    short = [name for name in family if comparisons[name].confidence < needed - 1e-12]
    if short:
        raise ValueError(
            f"segments {short} have intervals at confidence {comparisons[short[0]].confidence}, "
            f"but {len(family)} segments at family confidence {family_confidence} need "
            f"{needed:.6g}: compute them with confidence=simultaneous_confidence("
            f"{family_confidence}, {len(family)})"
        )
    raw = [decisions[name].p_worse for name in family]
    adjusted = holm([np.nan if p is None else p for p in raw])
    for name, p in zip(family, adjusted, strict=True):
        decisions[name] = replace(
            decisions[name], p_worse_adjusted=None if np.isnan(p) else float(p)
        )
    return decisions
