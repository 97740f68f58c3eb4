"""The evidence every task's comparison gates share: slices, rows, verdicts and results.

Classification compares rows and ranking compares queries, and each measures support its own
way; the rest is one method. A global comparison is one row `(all)`. A segment gate judges
every slice (one value of a segment column, or of two columns crossed) with Bonferroni
intervals and `decide_segments`, sorts the rows worst first, and fails if any slice fails,
else is `inconclusive` if any slice is (or none was judged).

Slices below `min_support` are never silently dropped (`small_segments`): `pool` judges the
small slices of one column together as one more slice of the family, `block` makes the gate
`inconclusive` while any exists, `warn` lists them as not judged. The pooled slice and every
slice it holds are rows of the evidence.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ml_release.gates.result import GateResult, Verdict
from ml_release.metrics import CROSS
from ml_release.stats import Comparison, Decision, decide, decide_segments, simultaneous_confidence

ALL = "(all)"
LISTED = 5  # failing or inconclusive segments named in a summary


def direction(higher: bool) -> str:
    """The evidence's direction field."""
    return "higher_is_better" if higher else "lower_is_better"


def margin(params) -> float | None:
    """The tolerated drop of a comparison gate: absolute when given, else relative."""
    return params.max_drop if params.max_drop is not None else params.max_relative_drop


def decide_vs_baseline(comparison: Comparison, params, higher: bool, support: int) -> Decision:
    """The verdict of a comparison with production under the gate's margin and min_support."""
    return decide(
        comparison,
        greater_is_better=higher,
        max_drop=params.max_drop,
        max_relative_drop=params.max_relative_drop,
        min_support=params.min_support,
        support=support,
    )


def comparison_result(
    gate_name: str,
    target: str,
    comparison: Comparison,
    decision: Decision,
    row_support: dict,
    summary: str,
    method: str,
    **evidence,
) -> GateResult:
    """A global comparison gate's result: the comparison is its evidence and its one row."""
    return GateResult(
        gate_name,
        target,
        decision.verdict,
        summary,
        method,
        observed=comparison.candidate,
        baseline=comparison.baseline,
        interval=(comparison.low, comparison.high),
        rows=[slice_row(ALL, ALL, row_support, comparison, decision)],
        draws=draw_count(comparison),
        **evidence,
    )


def draw_count(comparison: Comparison) -> int | None:
    """Bootstrap replicates behind the interval (None for exact methods)."""
    if comparison.draws is None:
        return None
    return int(np.isfinite(comparison.draws).sum())


def segment_slices(
    segments: dict[str, np.ndarray], columns: list[str], crossings: bool
) -> Iterator[tuple[str, str, np.ndarray]]:
    """(column, value, mask) for every segment value, and crossings when asked."""
    for column in columns:
        values = segments[column]
        for value in np.unique(values):
            yield column, str(value), values == value
    if crossings:
        for i, first in enumerate(columns):
            for second in columns[i + 1 :]:
                pairs = np.char.add(
                    np.char.add(segments[first].astype(str), CROSS),
                    segments[second].astype(str),
                )
                for value in np.unique(pairs):
                    yield f"{first}{CROSS}{second}", str(value), pairs == value


def slice_row(column, value, support: dict, comparison: Comparison, decision) -> dict:
    """One judged slice of a gate's evidence table."""
    return {
        "column": column,
        "value": value,
        **support,
        "candidate": comparison.candidate,
        "baseline": comparison.baseline,
        "delta": comparison.delta,
        "low": comparison.low,
        "high": comparison.high,
        "method": comparison.method,
        **({"draws": draw_count(comparison)} if comparison.draws is not None else {}),
        "verdict": decision.verdict.value,
        "status": "ok" if decision.verdict is Verdict.PASS else decision.verdict.value,
        "reason": decision.reason,
    }


def skipped_row(column, value, support: dict, reason: str, status: str = "not judged") -> dict:
    """One slice too small (or undefined) to judge, with the reason."""
    return {"column": column, "value": value, **support, "status": status, "reason": reason}


SliceCheck = Callable[[np.ndarray], tuple[dict, str, bool]]
POOL_NAMES = 6  # small segments named in a pooled slice's value


@dataclass
class SlicePlan:
    """Which slices a segment gate judges: (column, value, mask, support) each, and the rest."""

    judged: list[tuple[str, str, np.ndarray, dict]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    small: int = 0  # slices below min_support, pooled or not
    pooled: int = 0  # of those, judged inside a pooled slice

    def note(self, policy: str) -> str:
        """What happened to the slices not judged on their own, for the gate's summary."""
        parts = []
        if self.pooled:
            pools = sum(1 for _c, v, _m, _s in self.judged if v.startswith("(small segments"))
            parts.append(f"{self.pooled} segments below min_support judged pooled in {pools}")
        alone = self.small - self.pooled
        if alone:
            why = {"pool": "even pooled", "warn": "small_segments: warn"}.get(
                policy, "small_segments: block, so the gate is inconclusive"
            )
            parts.append(f"{alone} segments below min_support not judged ({why})")
        undefined = len([r for r in self.skipped if r["status"] == "not judged"]) - alone
        if undefined:
            parts.append(f"{undefined} segments not judged: metric undefined")
        return f" ({'; '.join(parts)})" if parts else ""


def plan_slices(
    slices: Iterable[tuple[str, str, np.ndarray]], check: SliceCheck, policy: str
) -> SlicePlan:
    """Judged and skipped slices; with `pool`, the small slices of each column become one.

    `check(mask)` returns the slice's support, why it cannot be judged ('' when it can) and
    whether that is because it is below min_support. A pooled slice is checked the same way;
    when even the pool cannot be judged, its slices are listed as not judged.
    """
    plan, small = SlicePlan(), {}
    for column, value, mask in slices:
        support, reason, too_small = check(mask)
        if not reason:
            plan.judged.append((column, value, mask, support))
            continue
        plan.small += too_small
        if too_small and policy == "pool":
            small.setdefault(column, []).append((value, mask, support, reason))
        else:
            plan.skipped.append(skipped_row(column, value, support, reason))
    for column, members in small.items():
        pooled = np.logical_or.reduce([m for _v, m, _s, _r in members])
        names = [v for v, _m, _s, _r in members]
        more = f" and {len(names) - POOL_NAMES} more" if len(names) > POOL_NAMES else ""
        value = f"(small segments: {', '.join(names[:POOL_NAMES])}{more})"
        support, reason, _ = check(pooled)
        if not reason:
            plan.judged.append((column, value, pooled, support))
            plan.pooled += len(members)
        for name, _m, member_support, member_reason in members:
            plan.skipped.append(
                skipped_row(column, name, member_support, f"{member_reason}; judged in {value}")
                if not reason
                else skipped_row(
                    column, name, member_support, f"{member_reason}; even pooled: {reason}"
                )
            )
            if not reason:
                plan.skipped[-1]["status"] = "pooled"
    return plan


def judge_slices(
    judged: list[tuple[str, str, np.ndarray, dict]],
    compare: Callable[[np.ndarray, float], Comparison],
    params,
    higher: bool,
) -> tuple[list[dict], float]:
    """Rows of the judged (column, value, mask, support) slices, worst first; the confidence."""
    none = params.multiplicity == "none"
    confidence = simultaneous_confidence(
        params.confidence, max(1, len(judged)), "none" if none else "bonferroni"
    )
    comparisons = {f"{c}={v}": compare(m, confidence) for c, v, m, _ in judged}
    decisions = decide_segments(
        comparisons,
        greater_is_better=higher,
        max_drop=params.max_drop,
        max_relative_drop=params.max_relative_drop,
        family_confidence=confidence if none else params.confidence,
    )
    rows = [
        slice_row(c, v, s, comparisons[f"{c}={v}"], decisions[f"{c}={v}"]) for c, v, _, s in judged
    ]
    rows.sort(
        key=lambda r: (
            r["verdict"] != "fail",
            r["verdict"] != "inconclusive",
            r["delta"] if higher else -r["delta"],
        )
    )
    return rows, confidence


def family_verdict(rows: list[dict], blocked_small: bool = False) -> Verdict:
    """`fail` if any slice fails, else `inconclusive` if any is, or none was judged.

    `blocked_small`: slices below min_support exist under `small_segments: block`.
    """
    verdicts = {r["verdict"] for r in rows}
    if "fail" in verdicts:
        return Verdict.FAIL
    unsure = "inconclusive" in verdicts or not rows or blocked_small
    return Verdict.INCONCLUSIVE if unsure else Verdict.PASS


def named_segments(rows: list[dict], support: Callable[[dict], str]) -> str:
    """The first failing or inconclusive slices, each with its interval and `support` text."""
    return "; ".join(
        f"segment {r['column']}={r['value']} {r['delta']:+.3f} [{r['low']:+.3f}, "
        f"{r['high']:+.3f}], {support(r)}: {r['verdict']}"
        for r in [r for r in rows if r["verdict"] != "pass"][:LISTED]
    )


def no_production(gate_name: str, target: str, first_release_check: str) -> GateResult:
    """A segment gate before the first release: there is nothing to compare a segment with."""
    return GateResult(
        gate_name,
        target,
        Verdict.PASS,
        "no production model yet: segment comparisons do not apply "
        f"(first release: absolute gates and the {first_release_check} check)",
        "n/a",
    )


def segment_result(
    gate_name: str,
    target: str,
    rows: list[dict],
    plan: SlicePlan,
    summary: str,
    method: str,
    policy: str,
    **evidence,
) -> GateResult:
    """A segment gate's result; the worst judged slice is its observed value and interval."""
    worst = rows[0] if rows else {}
    not_judged = [r for r in plan.skipped if r["status"] != "pooled"]
    blocked = policy == "block" and plan.small > 0
    return GateResult(
        gate_name,
        target,
        family_verdict(rows, blocked),
        summary + plan.note(policy),
        method,
        observed=worst.get("candidate"),
        baseline=worst.get("baseline"),
        interval=(worst["low"], worst["high"]) if worst else None,
        support={"segments": len(rows), "not_judged": len(not_judged), "pooled": plan.pooled},
        rows=rows + plan.skipped,
        draws=min((r["draws"] for r in rows if r.get("draws")), default=None),
        **evidence,
    )
