"""What the LLM gate modules share: combining verdicts and one evidence row per comparison."""

from ml_release.gates.result import Verdict
from ml_release.stats.paired import Comparison
from ml_release.stats.verdict import Decision

_ORDER = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1, Verdict.PASS: 2}


def worst(verdicts: list[Verdict]) -> Verdict:
    """Fail over inconclusive over pass."""
    return min(verdicts, key=_ORDER.__getitem__) if verdicts else Verdict.PASS


def comparison_row(name: str, comparison: Comparison, decision: Decision) -> dict:
    """One evidence row: both values, the interval of the difference, support and verdict."""
    return {
        "route": name,
        "candidate": comparison.candidate,
        "baseline": comparison.baseline,
        "delta": comparison.delta,
        "low": comparison.low,
        "high": comparison.high,
        "n": comparison.n,
        "verdict": decision.verdict.value,
        "p_worse_adjusted": decision.p_worse_adjusted,
        "status": "ok" if decision.verdict is Verdict.PASS else decision.verdict.value,
    }
