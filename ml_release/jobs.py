"""Dagster jobs of ml-release, and running the release job in-process for the CLI."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ml_release import keys
from ml_release.errors import (
    EXIT_BAD_INPUT,
    EXIT_BLOCKED,
    EXIT_CONFLICT,
    EXIT_INTEGRITY,
    EXIT_OK,
)
from ml_release.home import release_home, reports_dir
from ml_release.rollback import rollback
from ml_release.spec import ReleaseSpec


class RollbackConfig(dg.Config):
    """Where to roll back to, and why (both end up in the ledger)."""

    to: str = Field("", description="Version to restore; empty: the `previous` alias.")
    reason: str = Field("rollback launched from the Dagster UI", description="Why.")


def build_rollback_job(model: str) -> dg.JobDefinition:
    """The `rollback` job: `production` back to a verified known-good version."""

    @dg.op(required_resource_keys={"model_registry"})
    def rollback_production(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
        """Verify the target artifact, move the aliases, record the event."""
        outcome = rollback(
            context.resources.model_registry.get(),
            model,
            to=config.to or None,
            reason=config.reason,
            actor="dagster",
        )
        if outcome.already_done:
            context.log.info(f"{model} {outcome.target} is already in production")
        else:
            context.log.info(f"{model} production is now {outcome.target}")

    @dg.job(name=keys.ROLLBACK_JOB, description="Roll production back to a known-good version.")
    def rollback_job():
        rollback_production()

    return rollback_job


def release_jobs(canary: bool) -> list:
    """The `release` job (every asset but the canary) and, with canaries, the `canary` job."""
    everything = dg.AssetSelection.all()
    if not canary:
        return [_release_job(everything)]
    rollout = dg.AssetSelection.assets(keys.CANARY_ROLLOUT)
    return [
        _release_job(everything - rollout),
        dg.define_asset_job(
            name=keys.CANARY_JOB,
            selection=rollout,
            description="Roll the gated candidate out in traffic steps; promote it or abort.",
        ),
    ]


def _release_job(selection: dg.AssetSelection):
    return dg.define_asset_job(
        name=keys.RELEASE_JOB,
        selection=selection,
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

_EXIT_BY_ERROR = {
    "DatabaseLockedError": EXIT_CONFLICT,
    "ConflictError": EXIT_CONFLICT,
    "IntegrityError": EXIT_INTEGRITY,
}
_CHECK_BLOCKED = "DagsterAssetCheckFailedError"


@dataclass
class ReleaseOutcome:
    """What a release run concluded: gate verdicts, failed steps, and the exit code."""

    run_id: str
    candidate: dict = field(default_factory=dict)
    decision: dict = field(default_factory=dict)
    refusal: str = ""
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
        if not self.decision and not self.blocked:
            return EXIT_BLOCKED  # nothing was promoted and no gate said why: never a pass
        return EXIT_BLOCKED if self.blocked or self.refusal else EXIT_OK


def latest_candidate(instance: dg.DagsterInstance) -> tuple[str | None, str | None]:
    """(version, digest) of the latest `candidate_model` materialization: what is being gated."""
    event = instance.get_latest_materialization_event(dg.AssetKey(keys.CANDIDATE_MODEL))
    if event is None or event.asset_materialization is None:
        return None, None
    metadata = event.asset_materialization.metadata
    version, digest = metadata.get(keys.CANDIDATE_VERSION), metadata.get(keys.CANDIDATE_DIGEST)
    return getattr(version, "value", None), getattr(digest, "value", None)


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


def _plain_metadata(event: Any) -> dict:
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def execute_release(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    candidate_artifact: str = "",
    log_level: str = "CRITICAL",
    job: str = keys.RELEASE_JOB,
) -> ReleaseOutcome:
    """Run the release (or canary) job in this process and collect every verdict and failure."""
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if job == keys.RELEASE_JOB:
        run_config["ops"] = {keys.CANDIDATE_MODEL: {"config": {"artifact": candidate_artifact}}}
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config
    )
    return outcome_from_events(result.run_id, result.all_events)


def outcome_of_run(instance: dg.DagsterInstance, run_id: str) -> ReleaseOutcome:
    """The outcome of a finished run from the instance's event log (UI and sensor runs)."""
    entries = instance.all_logs(run_id)
    return outcome_from_events(run_id, [e.dagster_event for e in entries if e.dagster_event])


def outcome_from_events(run_id: str, events: list) -> ReleaseOutcome:
    """Gate verdicts, the gated candidate, the decision and the failures from a run's events."""
    outcome = ReleaseOutcome(run_id=run_id)
    evaluations = [
        event.event_specific_data
        for event in events
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    for evaluation in evaluations:
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
    planned: list[str] = []
    materialized: set[str] = set()
    for event in events:
        if event.event_type != dg.DagsterEventType.ASSET_MATERIALIZATION:
            continue
        key = event.asset_key.to_user_string()
        materialized.add(key)
        if key == keys.CANDIDATE_MODEL:
            outcome.candidate = _plain_metadata(event)
        elif key in (keys.RELEASE_DECISION, keys.CANARY_ROLLOUT):
            outcome.decision = _plain_metadata(event)
    for event in events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            cause = _root_cause(event.step_failure_data.error)
            if cause.cls_name == _CHECK_BLOCKED:
                continue  # a blocking gate said no: reported with the gates, not as an error
            if cause.cls_name == "PromotionRefused":
                outcome.refusal = cause.message.split(": ", 1)[-1].strip()
                continue
            outcome.failures.append(
                {"step": event.step_key, "error": cause.cls_name, "message": cause.message.strip()}
            )
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            planned.append(event.asset_key.to_user_string())
    outcome.skipped = [key for key in planned if key not in materialized]
    return outcome


def execute_in_ephemeral_instance(
    defs: dg.Definitions,
    candidate_artifact: str = "",
    canary: bool = False,
    before_canary: Callable[[], None] = lambda: None,
) -> tuple[ReleaseOutcome, ReleaseOutcome | None]:
    """The release job on a throwaway in-memory instance (coverage runs: nothing persists).

    With `canary`, a candidate the release gated ("awaiting canary") then goes through the
    canary job on the same instance, after `before_canary()`.
    """
    with dg.DagsterInstance.ephemeral() as instance:
        release = execute_release(defs, instance, candidate_artifact)
        if not canary or release.decision.get("decision") != "awaiting canary":
            return release, None
        before_canary()
        return release, execute_release(defs, instance, job=keys.CANARY_JOB)


class CoverageConfig(dg.Config):
    """Which failure modes to inject and how."""

    modes: list[str] = Field(default_factory=list, description="Failure modes (empty: all).")
    sweep: bool = Field(False, description="Also find the weakest blocked strength.")
    all_gates: bool = Field(False, description="Serving and shadow gates for every mode.")


def build_coverage_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """A one-op job: the coverage matrix as metadata, failed when coverage falls short."""

    @dg.op(
        name="gate_coverage",
        description="Inject each failure mode into a scratch copy; which gates block it.",
    )
    def gate_coverage(context: dg.OpExecutionContext, config: CoverageConfig) -> dg.Output:
        from ml_release.coverage.report import markdown, write_reports
        from ml_release.coverage.run import run_coverage

        workdir = release_home() / "coverage" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        result = run_coverage(
            spec,
            workdir,
            modes=config.modes or None,
            sweep=config.sweep,
            all_gates=config.all_gates,
            progress=context.log.info,
        )
        paths = write_reports(result, reports_dir())
        metadata = {
            "matrix": dg.MetadataValue.md(markdown(result)),
            "modes_blocked": sum(run.caught for run in result.runs),
            "modes": len(result.runs),
            "modes_errored": len(result.errored),
            "control_passed": result.control_passed,
            "uncovered": ", ".join(result.uncovered) or "none",
            "report": dg.MetadataValue.path(str(paths["html"])),
        }
        if result.exit_code:
            raise dg.Failure(
                "coverage falls short: "
                + (
                    f"required modes not blocked: {', '.join(result.uncovered)}; "
                    if result.uncovered
                    else ""
                )
                + ("the control did not pass" if not result.control_passed else ""),
                metadata=metadata,
            )
        return dg.Output(result.exit_code, metadata=metadata)

    @dg.job(
        name="coverage",
        description="Gate coverage: which gates block each injected failure mode (scratch copy).",
    )
    def coverage():
        gate_coverage()

    return coverage
