"""Dagster jobs of ml-release, and running the release job in-process for the CLI."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.errors import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_CONFLICT, EXIT_OK

release_job = dg.define_asset_job(
    name=keys.RELEASE_JOB,
    selection=dg.AssetSelection.all(),
    description="Materialize the release graph and run every gate of the release spec.",
)

INSTANCE_CONFIG = """\
# Written by ml-release: the Dagster instance shared by `ml-release run` and `dagster dev`.
# Steps that touch the DuckDB warehouse run one at a time across runs (DuckDB allows one
# writing process per file).
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""

_EXIT_BY_ERROR = {"WarehouseLockedError": EXIT_CONFLICT}
_CHECK_BLOCKED = "DagsterAssetCheckFailedError"


@dataclass
class ReleaseOutcome:
    """What a release run concluded: gate verdicts, failed steps, and the exit code."""

    run_id: str
    gates: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> list[dict]:
        """Blocking gates that did not pass."""
        return [g for g in self.gates if g["blocking"] and not g["passed"]]

    @property
    def exit_code(self) -> int:
        """0 every blocking gate passed, 1 blocked by a gate, 2/3 an error stopped the run."""
        if self.failures:
            return max(_EXIT_BY_ERROR.get(f["error"], EXIT_BAD_INPUT) for f in self.failures)
        return EXIT_BLOCKED if self.blocked else EXIT_OK


def ensure_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The persistent local Dagster instance, created with the warehouse pool limit if new."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    return dg.DagsterInstance.from_config(str(dagster_home))


def _root_cause(error: Any) -> Any:
    # Dagster wraps the user's exception; the innermost cause carries our message.
    while error.cause is not None:
        error = error.cause
    return error


def execute_release(
    defs: dg.Definitions, instance: dg.DagsterInstance, log_level: str = "CRITICAL"
) -> ReleaseOutcome:
    """Run the release job in this process and collect every verdict and failure."""
    result = defs.resolve_job_def(keys.RELEASE_JOB).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    outcome = ReleaseOutcome(run_id=result.run_id)
    for evaluation in result.get_asset_check_evaluations():
        metadata = evaluation.metadata
        verdict = metadata.get("verdict")
        outcome.gates.append(
            {
                "gate": evaluation.check_name,
                "dataset": evaluation.asset_key.to_user_string(),
                "verdict": verdict.value if verdict else ("pass" if evaluation.passed else "fail"),
                "passed": evaluation.passed,
                "blocking": evaluation.severity == dg.AssetCheckSeverity.ERROR,
                "summary": evaluation.description or "",
            }
        )
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            cause = _root_cause(event.step_failure_data.error)
            if cause.cls_name == _CHECK_BLOCKED:
                continue  # a blocking gate said no: reported with the gates, not as an error
            outcome.failures.append(
                {"step": event.step_key, "error": cause.cls_name, "message": cause.message.strip()}
            )
        elif event.event_type == dg.DagsterEventType.STEP_SKIPPED:
            outcome.skipped.append(event.step_key)
    return outcome
