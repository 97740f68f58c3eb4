"""The jobs of a spec: release (and canary), rollback, train and coverage."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_release import keys
from ml_release.home import release_home, reports_dir
from ml_release.jobs.execute import execute_for_coverage
from ml_release.jobs.production import production_materialization
from ml_release.resource_types import Folder, RegistrySource
from ml_release.rollback import next_known_good, rollback
from ml_release.spec import ReleaseSpec


class RollbackConfig(dg.Config):
    """Where to roll back to, and why (both end up in the ledger)."""

    to: str = Field("", description="Version to restore; empty: the last known-good version.")
    reason: str = Field("rollback launched from the Dagster UI", description="Why.")
    override: bool = Field(
        False, description="Restore `to` although it is not known-good (recorded as such)."
    )


def build_rollback_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """The `rollback` job: `production` back to a verified known-good version."""
    model = spec.model.name

    @dg.op(name=spec.named("rollback_production"))
    def rollback_production(
        context: dg.OpExecutionContext,
        config: RollbackConfig,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
    ) -> None:
        """Verify the target artifact, move the alias, record the event."""
        registry = model_registry.get()
        store = Path(artifact_store.path)
        outcome = rollback(
            registry,
            store,
            model,
            to=config.to or None,
            reason=config.reason,
            actor="dagster",
            override=config.override,
        )
        if outcome.already_done:
            context.log.info(f"{model}: nothing to do: {outcome.note}")
            return
        target = next_known_good(registry, store, model)
        key = spec.key(keys.PRODUCTION_MODEL)
        context.log_event(production_materialization(outcome.event, target, key=key))
        context.log.info(f"{model} production is now {outcome.target}")

    @dg.job(
        name=spec.named(keys.ROLLBACK_JOB),
        description="Roll production back to a known-good version.",
        tags={keys.MODEL_TAG: model},
    )
    def rollback_job():
        rollback_production()

    return rollback_job


def build_train_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """The `train_candidate` job: train the spec's model and publish it for the sensor."""

    @dg.op(name=spec.named("train_and_publish"))
    def train_and_publish(context: dg.OpExecutionContext) -> None:
        """Train the spec's pipeline and publish it into incoming/ (the sensor gates it)."""
        from ml_release.feature_code import load_feature_code
        from ml_release.publish import publish_candidate
        from ml_release.sources import fingerprint
        from ml_release.training import train_candidate

        model, metrics = train_candidate(spec)
        folder = publish_candidate(
            model,
            spec,
            training_data_fingerprint=fingerprint(spec.source_for(keys.TRAINING_SNAPSHOT)),
        )
        code = load_feature_code(spec.features.code)
        context.log.info(
            f"published {folder.name} (feature code {code.version}); "
            f"{keys.ARTIFACT_SENSOR} gates it: {metrics}"
        )

    @dg.job(
        name=spec.named(keys.TRAIN_JOB),
        description="Train the spec's model and publish it into incoming/ for the sensor to gate.",
        tags={keys.MODEL_TAG: spec.model.name},
    )
    def train_job():
        train_and_publish()

    return train_job


def release_jobs(spec: ReleaseSpec) -> list:
    """The `release` job (every asset but the canary) and, with canaries, the `canary` job.

    Each selects this spec's assets only (its key prefix where a location gates several), and
    tags its runs with the model: a run queue's tag limit serializes one model's releases.
    """
    mine = dg.AssetSelection.key_prefixes([spec.scope]) if spec.scope else dg.AssetSelection.all()
    gated = mine - dg.AssetSelection.assets(spec.key(keys.PRODUCTION_MODEL))
    tags = {keys.MODEL_TAG: spec.model.name}
    if not spec.canary.enabled:
        return [_release_job(spec, gated, tags)]
    rollout = dg.AssetSelection.assets(spec.key(keys.CANARY_ROLLOUT))
    return [
        _release_job(spec, gated - rollout, tags),
        dg.define_asset_job(
            name=spec.named(keys.CANARY_JOB),
            selection=rollout,
            description="Roll the gated candidate out in traffic steps; promote it or abort.",
            tags=tags,
        ),
    ]


def _release_job(spec: ReleaseSpec, selection: dg.AssetSelection, tags: dict[str, str]):
    return dg.define_asset_job(
        name=spec.named(keys.RELEASE_JOB),
        selection=selection,
        description="Gate one candidate (the run's partition: its digest) against every rule "
        "of the release spec, and promote it if every must_pass gate passes.",
        tags=tags,
    )


class CoverageConfig(dg.Config):
    """Which failure modes to inject and how."""

    modes: list[str] = Field(default_factory=list, description="Failure modes (empty: all).")
    sweep: bool = Field(False, description="Also find the weakest blocked strength.")
    all_gates: bool = Field(False, description="Serving and shadow gates for every mode.")


def build_coverage_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """A one-op job: the coverage matrix as metadata, failed when coverage falls short."""

    @dg.op(
        name=spec.named("gate_coverage"),
        description="Inject each failure mode into a scratch copy; which gates block it.",
    )
    def gate_coverage(context: dg.OpExecutionContext, config: CoverageConfig) -> dg.Output:
        from ml_release.coverage.report import markdown, write_reports
        from ml_release.coverage.run import run_coverage

        workdir = release_home() / "coverage" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        result = run_coverage(
            spec,
            workdir,
            execute_for_coverage,
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
        name=spec.named("coverage"),
        description="Gate coverage: which gates block each injected failure mode (scratch copy).",
        tags={keys.MODEL_TAG: spec.model.name},
    )
    def coverage():
        gate_coverage()

    return coverage
