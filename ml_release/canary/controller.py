"""The canary step loop over any `TrafficSplit`: set the weight, send a step's traffic, analyse.

`run_steps` knows nothing of servers or ledgers: it moves the split through the steps, calls
`send(step_index)` to drive that step's traffic (on one machine: a replay of logged requests
through the router), analyses every step so far (the arms compared within each step), and
stops at the first failing look. A `send` that raises `NotEnoughTraffic` ends the canary
`inconclusive` before that step: a replay never repeats a request to make up a step. Every
way out that is not a pass puts the weight back to 0: traffic returns to production.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ml_release.canary.analysis import BINARY, Look, StepRequests, analyze, step_requests
from ml_release.gates.result import GateResult, Verdict
from ml_release.serving.traffic import TrafficSplit
from ml_release.spec import CanarySpec


@dataclass
class CanaryResult:
    """How the rollout ended."""

    verdict: Verdict
    looks: list[Look]
    reason: str

    @property
    def failed_step(self) -> float | None:
        """The step whose look failed, if one did."""
        failed = [look.step for look in self.looks if look.decision is Verdict.FAIL]
        return failed[0] if failed else None


def canary_evidence(result: CanaryResult, gate: str, target: str, spec_hash: str) -> GateResult:
    """The canary's verdict in every gate's evidence shape.

    The headline numbers are those of the deciding comparison at the last look: the first that
    failed, else the first not passed, else the one closest to its margin. Every comparison at
    every look is in `rows`. Interval and threshold are in the comparison's contrast units
    (candidate - production, or of log latency); a rise beyond the margin is the bad direction.
    """
    rows = [{"step_percent": look.step, **row} for look in result.looks for row in look.rows()]
    if not result.looks or not result.looks[-1].results:
        return GateResult(gate, target, result.verdict, result.reason, "canary", rows=rows)
    last = result.looks[-1]
    order = (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS)
    name, deciding = min(
        last.results.items(),
        key=lambda item: (order.index(item[1].decision), item[1].margin - item[1].upper),
    )
    return GateResult(
        gate,
        target,
        result.verdict,
        result.reason,
        f"{name}: {deciding.method} anytime-valid confidence sequence, alpha={deciding.alpha:g}",
        observed=deciding.candidate,
        baseline=deciding.production,
        threshold=deciding.margin,
        interval=(deciding.lower, deciding.upper),
        support={"candidate": deciding.n_candidate, "production": deciding.n_production},
        rows=rows,
        spec_hash=spec_hash,
    )


class NotEnoughTraffic(Exception):
    """A step cannot get its share of fresh requests; the message says how many are left."""


def _send_with_deadline(send: Callable[[int], None], index: int, deadline: float) -> str | None:
    failure: list[BaseException] = []

    def target() -> None:
        try:
            send(index)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target, name=f"canary-step-{index}", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return f"the step's traffic did not finish within deadline_seconds={deadline:g}"
    if failure:
        raise failure[0]
    return None


def run_steps(
    split: TrafficSplit,
    send: Callable[[int], None],
    settings: CanarySpec,
    labels: dict[str, Any],
    on_look: Callable[[Look], None] = lambda look: None,
    task: str = BINARY,
) -> CanaryResult:
    """Move traffic through `settings.steps`, analysing after each; abort at a failing look."""
    looks: list[Look] = []
    steps: list[StepRequests] = []
    try:
        for index, step in enumerate(settings.steps):
            start = split.mark()
            split.set_weight(step)
            try:
                late = _send_with_deadline(send, index, settings.deadline_seconds)
            except NotEnoughTraffic as short:
                split.set_weight(0)
                reason = f"inconclusive: not enough traffic for the {step:g} % step: {short}"
                return CanaryResult(Verdict.INCONCLUSIVE, looks, reason)
            steps.append(step_requests(step, split.records(since=start), labels, task))
            look = analyze(steps, settings, step == settings.steps[-1], task)
            if late:
                look.decision, look.reasons = Verdict.FAIL, [late, *look.reasons]
            looks.append(look)
            on_look(look)
            if look.decision is Verdict.FAIL:
                split.set_weight(0)
                return CanaryResult(
                    Verdict.FAIL, looks, f"aborted at {step:g} %: " + "; ".join(look.reasons)
                )
    except BaseException:
        split.set_weight(0)
        raise
    final = looks[-1]
    if final.decision is not Verdict.PASS:
        split.set_weight(0)
        return CanaryResult(
            Verdict.INCONCLUSIVE,
            looks,
            "inconclusive at 100 %, not promoted: " + "; ".join(final.reasons),
        )
    return CanaryResult(Verdict.PASS, looks, "; ".join(final.reasons))
