"""The one composition root: assets, checks, resources, jobs and sensors for a release spec.

`dagster dev -w workspace.yaml` loads `defs` from here, built from `$ML_RELEASE_SPEC` (default
`./release.yaml`). A bad spec stops the code location from loading with the spec's error.

Steps run on Dagster's multiprocess executor, or on Celery workers when
`$ML_RELEASE_CELERY_BROKER` names a broker (`step_executor`). `release_job` rebuilds one job of
a spec wherever a step runs: it is what a Celery worker imports (`reconstructable_release_job`).
"""

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ml_release import keys
from ml_release.errors import ConfigurationError, SpecError
from ml_release.home import release_home, reports_dir, spec_path
from ml_release.jobs import execute_for_coverage, production_materialization
from ml_release.resource_types import Folder, RegistrySource
from ml_release.rollback import next_known_good, rollback
from ml_release.sensors import build_artifact_sensor, build_blocked_run_sensor
from ml_release.spec import ReleaseSpec, load_spec
from ml_release.spec_set import SpecSet, load_specs

PROJECT_PACKAGES = ("assets", "checks", "resources")

# The project's Dagster definitions live in the project folder, not in the ml_release wheel:
# the project's own install (`pip install -e .`, what `make install` does) puts that folder on
# the import path, as Dagster's `working_directory` does for `dg dev` (docs/deployment.md).
try:
    import assets
    import checks
    import resources
except ModuleNotFoundError as exc:
    if exc.name not in PROJECT_PACKAGES:
        raise
    raise ConfigurationError(
        f"the project's Dagster definitions ({', '.join(f'{p}/' for p in PROJECT_PACKAGES)}) "
        f"are not importable (no module {exc.name!r}): ml-release runs them from the project "
        "folder, which must be on the import path. Install the project (`pip install -e "
        "PROJECT_FOLDER`, what `make install` does) or set PYTHONPATH=PROJECT_FOLDER "
        "(docs/deployment.md#installing-the-package-and-the-project-folder)."
    ) from None

# Runs launched from the UI or the sensor run each step in its own process. Forking them from
# a server that imported this module once takes a step's start from ~8 s to well under one.
# Dagster's instance storage is imported by each step when it opens the instance, not by the
# definitions: preloaded too, it saves every step process about 0.8 s more (measured on 2
# cores). These module paths are Dagster's own, not public API: the fork server skips a module
# that does not import, so tests/test_dagster_adapter.py checks that each one does.
STEP_PRELOAD = [
    "ml_release.definitions",
    "dagster._core.storage.base_storage",
    "dagster._core.instance.factory",
]
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": STEP_PRELOAD}}}
)
CELERY_BROKER_ENV, CELERY_BACKEND_ENV = keys.CELERY_BROKER_ENV, keys.CELERY_BACKEND_ENV


def distributed() -> bool:
    """Whether steps run on Celery workers (a broker is configured) rather than here."""
    return bool(os.environ.get(CELERY_BROKER_ENV))


def step_executor() -> dg.ExecutorDefinition:
    """Celery workers when `$ML_RELEASE_CELERY_BROKER` is set, else the multiprocess executor.

    The broker and result-backend URLs are read from the environment when a run starts
    (`{"env": ...}`), so no address or password lands in a run's configuration. The result
    backend defaults to the broker (a Redis server holds both).
    """
    if not distributed():
        return STEP_EXECUTOR
    from dagster_celery import celery_executor

    backend = CELERY_BACKEND_ENV if os.environ.get(CELERY_BACKEND_ENV) else CELERY_BROKER_ENV
    return celery_executor.configured(
        {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": backend}},
        name="celery_executor",
    )


# -- the jobs of a spec: release (and canary), rollback, train and coverage ----------------------
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


# -- the code location ---------------------------------------------------------------------------
def _model_definitions(spec: ReleaseSpec, chained: bool = True) -> tuple[dg.Definitions, Any]:
    """One model's assets, checks, jobs and blocked-run sensor, and its release job."""
    jobs = release_jobs(spec)
    release = next(job for job in jobs if job.name == spec.named(keys.RELEASE_JOB))
    training = [build_train_job(spec)] if spec.model.task != "llm" else []
    return dg.Definitions(
        assets=assets.build_assets(spec, chained),
        asset_checks=checks.build_checks(spec),
        jobs=[
            *jobs,
            *training,
            build_rollback_job(spec),
            build_coverage_job(spec),  # every task: tabular and LLM failure modes
        ],
        sensors=[build_blocked_run_sensor(spec, release)],
    ), release


def build_definitions(
    spec: ReleaseSpec,
    resource_overrides: dict[str, dg.ConfigurableResource] | None = None,
    chained: bool = True,
) -> dg.Definitions:
    """Definitions for one release spec, on the embedded defaults unless overridden.

    `chained=False` (the coverage runner): the serving and shadow stages do not wait for the
    stage before them, so every gate a failure mode targets is judged.
    """
    model, release = _model_definitions(spec, chained)
    return dg.Definitions.merge(
        model,
        dg.Definitions(
            resources={**resources.local_resources(spec), **(resource_overrides or {})},
            sensors=[build_artifact_sensor([(spec, release)])],
            executor=step_executor(),
        ),
    )


def build_location(specs: SpecSet) -> dg.Definitions:
    """The code location of a spec file, or of a folder of specs (one model each).

    Several models: each one's assets under its own key prefix, its jobs and sensors named
    `<model>__<name>`, one warehouse file per model; one artifact sensor routes every new
    artifact to its model's release job by the name in its manifest.
    """
    if not specs.many:
        return build_definitions(specs.specs[0])
    llm_specs = [spec for spec in specs.specs if spec.llm is not None]
    if len(llm_specs) > 1:
        raise SpecError(
            f"{specs.source}: {len(llm_specs)} LLM specs in one folder; the location has one "
            "llm_client resource: keep one LLM spec per folder"
        )
    models = [(spec, *_model_definitions(spec)) for spec in specs.specs]
    return dg.Definitions.merge(
        *(defs for _spec, defs, _release in models),
        dg.Definitions(
            resources=resources.local_resources(llm_specs[0] if llm_specs else specs.specs[0]),
            sensors=[build_artifact_sensor([(spec, release) for spec, _defs, release in models])],
            executor=step_executor(),
        ),
    )


def release_job(spec_source: str, job_name: str) -> dg.JobDefinition:
    """Job `job_name` of the location of a spec file or folder (what a worker rebuilds)."""
    return build_location(load_specs(Path(spec_source))).resolve_job_def(job_name)


def reconstructable_release_job(spec: ReleaseSpec, job_name: str) -> Any:
    """A job that another process can rebuild: by this module, the spec file and the job name.

    Raises:
        ConfigurationError: `spec` differs from its file (a worker would gate other rules).
    """
    from ml_release.errors import ConfigurationError
    from ml_release.home import project_root

    if load_spec(spec.source).spec_hash != spec.spec_hash:
        raise ConfigurationError(
            f"the release spec changed in memory, so workers reading {spec.source} would run "
            "other rules: steps on Celery workers need the spec as its file says "
            f"(unset {CELERY_BROKER_ENV} to run this release in one process)."
        )
    return dg.build_reconstructable_job(
        "ml_release.definitions",
        "release_job",
        reconstructable_args=(str(spec.definitions_source), spec.named(job_name)),
        reconstructor_working_directory=str(project_root(spec.source)),
    )


def build_replay_definitions(spec: ReleaseSpec, responses_dir: Path) -> dg.Definitions:
    """Definitions whose LLM answers are the recordings in `responses_dir` (coverage runs)."""
    from resources.llm import ReplayLLMResource

    return build_definitions(
        spec, {"llm_client": ReplayLLMResource(responses_dir=str(responses_dir))}
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `workspace.yaml` loads: `$ML_RELEASE_SPEC`, a spec file or a folder."""
    return build_location(load_specs(spec_path()))


def execute_on_workers(
    instance: dg.DagsterInstance, spec: ReleaseSpec, digest: str, run_config: dict, job: str
) -> str:
    """Run `job` for partition `digest` with the configured executor; its run id.

    The instance must be one the workers reach too (PostgreSQL in a deployment): they read the
    run from it and write their steps' events into it.
    """
    recon = reconstructable_release_job(spec, job)
    tags = {keys.PARTITION_TAG: digest}
    with dg.execute_job(recon, instance, run_config=run_config, tags=tags) as result:
        return result.run_id
