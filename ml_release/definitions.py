"""The one composition root: assets, checks, resources and jobs for a release spec.

`dagster dev -w workspace.yaml` loads `defs` from here, built from `$ML_RELEASE_SPEC` (default
`./release.yaml`). A bad spec stops the code location from loading with the spec's error.

Steps run on Dagster's multiprocess executor, or on Celery workers when
`$ML_RELEASE_CELERY_BROKER` names a broker (`step_executor`). `release_job` rebuilds one job of
a spec wherever a step runs: it is what a Celery worker imports (`reconstructable_release_job`).
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.errors import ConfigurationError, SpecError
from ml_release.home import spec_path
from ml_release.jobs import build_coverage_job, build_rollback_job, build_train_job, release_jobs
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
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["ml_release.definitions"]}}}
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


def _model_definitions(spec: ReleaseSpec) -> tuple[dg.Definitions, Any]:
    """One model's assets, checks, jobs and blocked-run sensor, and its release job."""
    jobs = release_jobs(spec)
    release = next(job for job in jobs if job.name == spec.named(keys.RELEASE_JOB))
    training = [build_train_job(spec)] if spec.model.task != "llm" else []
    return dg.Definitions(
        assets=assets.build_assets(spec),
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
    spec: ReleaseSpec, resource_overrides: dict[str, dg.ConfigurableResource] | None = None
) -> dg.Definitions:
    """Definitions for one release spec, on the embedded defaults unless overridden."""
    model, release = _model_definitions(spec)
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
