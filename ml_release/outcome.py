"""What a release run concluded, read from its events.

The events are the orchestrator's (Dagster's `DagsterEvent`s, read by `ml_release.jobs`); this
module reads their public fields by name and never imports Dagster.
"""

from dataclasses import dataclass, field
from typing import Any

from ml_release import keys
from ml_release.errors import (
    EXIT_BLOCKED,
    EXIT_CONFLICT,
    EXIT_INTERNAL,
    EXIT_OK,
    exit_code_of_failure,
)


@dataclass
class ReleaseOutcome:
    """What a release run concluded: gate verdicts, failed steps, and the exit code."""

    run_id: str
    partition: str = ""  # the candidate digest the run gated
    prepared: str = ""  # how the candidate came to be, for the verdict table
    candidate: dict = field(default_factory=dict)
    decision: dict = field(default_factory=dict)
    refusal: str = ""
    stale: str = ""
    gates: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> list[dict]:
        """Blocking gates that did not pass."""
        return [g for g in self.gates if g["blocking"] and not g["passed"]]

    @property
    def exit_code(self) -> int:
        """0 every blocking gate passed, 1 blocked by a gate, 2-4 an error stopped the run."""
        if self.failures:
            codes = [exit_code_of_failure(f["error"], f["message"]) for f in self.failures]
            known = [code for code in codes if code != EXIT_INTERNAL]
            return max(known) if known else EXIT_INTERNAL
        if self.stale:
            return EXIT_CONFLICT
        if not self.decision and not self.blocked:
            return EXIT_BLOCKED  # nothing was promoted and no gate said why: never a pass
        return EXIT_BLOCKED if self.blocked or self.refusal else EXIT_OK


_CHECK_BLOCKED = "DagsterAssetCheckFailedError"


def _root_cause(error: Any) -> Any:
    # Dagster wraps the user's exception; the innermost cause carries our message.
    while error.cause is not None:
        error = error.cause
    return error


def _plain_metadata(event: Any) -> dict:
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


# The values of the Dagster event types read here (`DagsterEventType.<name>`), checked against
# the installed Dagster by tests/test_outcome.py.
EVENT_TYPES = {
    "ASSET_CHECK_EVALUATION": "ASSET_CHECK_EVALUATION",
    "ASSET_MATERIALIZATION_PLANNED": "ASSET_MATERIALIZATION_PLANNED",
    "ASSET_MATERIALIZATION": "ASSET_MATERIALIZATION",
    "STEP_FAILURE": "STEP_FAILURE",
    "RUN_FAILURE": "PIPELINE_FAILURE",
}
CHECK_BLOCKING_SEVERITY = "ERROR"  # AssetCheckSeverity.ERROR


def _value_of(member: Any) -> Any:
    """An enum member's value (event types and severities are string enums)."""
    return getattr(member, "value", member)


def _gate_row(evaluation: Any) -> dict:
    metadata = evaluation.metadata
    verdict = metadata.get("verdict")
    eval_set = metadata.get(keys.EVAL_SET)
    return {
        "gate": evaluation.check_name,  # the gate entry's id
        "dataset": evaluation.asset_key.path[-1],  # the asset's name, under any prefix
        "eval_set": eval_set.value if eval_set else None,
        "verdict": verdict.value if verdict else ("pass" if evaluation.passed else "fail"),
        "passed": evaluation.passed,
        "blocking": _value_of(evaluation.severity) == CHECK_BLOCKING_SEVERITY,
        "summary": evaluation.description or "",
    }


def outcome_from_events(run_id: str, events: list) -> ReleaseOutcome:
    """Gate verdicts, the gated candidate, the decision and the failures from a run's events."""
    outcome = ReleaseOutcome(run_id=run_id)
    planned: list[str] = []
    materialized: set[str] = set()
    run_error = None
    for event in events:
        kind = _value_of(event.event_type)
        if kind == EVENT_TYPES["ASSET_CHECK_EVALUATION"]:
            outcome.gates.append(_gate_row(event.event_specific_data))
        elif kind == EVENT_TYPES["ASSET_MATERIALIZATION_PLANNED"]:
            planned.append(event.asset_key.path[-1])
        elif kind == EVENT_TYPES["ASSET_MATERIALIZATION"]:
            key = event.asset_key.path[-1]
            materialized.add(key)
            if key == keys.CANDIDATE_MODEL:
                outcome.candidate = _plain_metadata(event)
            elif key in (keys.RELEASE_DECISION, keys.CANARY_ROLLOUT):
                outcome.decision = _plain_metadata(event)
        elif kind == EVENT_TYPES["STEP_FAILURE"]:
            cause = _root_cause(event.step_failure_data.error)
            message = cause.message.split(": ", 1)[-1].strip()
            if cause.cls_name == _CHECK_BLOCKED:
                continue  # a blocking gate said no: reported with the gates, not as an error
            if cause.cls_name == "PromotionRefused":
                outcome.refusal = message
            elif cause.cls_name == "StaleVerdicts":
                outcome.stale = message
            else:
                outcome.failures.append(
                    {"step": event.step_key, "error": cause.cls_name, "message": message}
                )
        elif kind == EVENT_TYPES["RUN_FAILURE"] and run_error is None:
            run_error = event
    outcome.skipped = [key for key in planned if key not in materialized]
    if run_error is not None and not outcome.failures and not outcome.gates:
        # The run failed before any step could say why (a worker or the executor): say it.
        data = run_error.event_specific_data
        cause = _root_cause(data.error) if data and data.error else None
        outcome.failures.append(
            {
                "step": "run",
                "error": cause.cls_name if cause else "RunFailure",
                "message": (cause.message if cause else run_error.message or "").strip(),
            }
        )
    return outcome
