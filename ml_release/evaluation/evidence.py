"""The evidence every task's comparison gates share: slices, rows, verdicts and results.

Classification compares rows and ranking compares queries, and each measures support its own
way; the rest is one method. A global comparison is one row `(all)`. A segment gate judges
every slice (one value of a segment column, or of two columns crossed) with Bonferroni
intervals and `decide_segments`, sorts the rows worst first, and fails if any slice fails,
else is `inconclusive` if any slice is (or none was judged).
"""

from collections.abc import Callable, Iterator

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
        **evidence,
    )


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
        "verdict": decision.verdict.value,
        "status": "ok" if decision.verdict is Verdict.PASS else decision.verdict.value,
        "reason": decision.reason,
    }


def skipped_row(column, value, support: dict, reason: str) -> dict:
    """One slice too small (or undefined) to judge, with the reason."""
    return {"column": column, "value": value, **support, "status": "not judged", "reason": reason}


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


def family_verdict(rows: list[dict]) -> Verdict:
    """`fail` if any slice fails, else `inconclusive` if any is or none was judged."""
    verdicts = {r["verdict"] for r in rows}
    if "fail" in verdicts:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE if "inconclusive" in verdicts or not rows else Verdict.PASS


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
    skipped: list[dict],
    summary: str,
    method: str,
    **evidence,
) -> GateResult:
    """A segment gate's result; the worst judged slice is its observed value and interval."""
    worst = rows[0] if rows else {}
    return GateResult(
        gate_name,
        target,
        family_verdict(rows),
        summary,
        method,
        observed=worst.get("candidate"),
        baseline=worst.get("baseline"),
        interval=(worst["low"], worst["high"]) if worst else None,
        support={"segments": len(rows), "not_judged": len(skipped)},
        rows=rows + skipped,
        **evidence,
    )
