"""What every report's gate module shares: picking the spec's gates, and stamping a result."""

from collections.abc import Callable
from typing import Any

from ml_release.gates.result import GateResult, Verdict


def gates_judged_by(spec: Any, judges: dict[str, Callable]) -> list:
    """The spec's gates that `judges` knows, in spec order."""
    return [g for g in spec.gates if g.name in judges]


def judge_with(judges: dict[str, Callable], gate: Any, report: Any, spec: Any) -> GateResult:
    """`gate`'s result on `report`, carrying the spec hash of the rules that produced it."""
    result = judges[gate.name](gate, report)
    result.spec_hash = spec.spec_hash
    return result


def gate_result(gate: Any, verdict: Verdict, summary: str, method: str, **kw: Any) -> GateResult:
    """A result for `gate` on its target."""
    return GateResult(gate.name, gate.target, verdict, summary, method, **kw)
