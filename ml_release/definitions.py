"""The one composition root: assets, checks, resources and jobs for a release spec.

`dagster dev -w workspace.yaml` loads `defs` from here, built from `$ML_RELEASE_SPEC` (default
`./release.yaml`). A bad spec stops the code location from loading with the spec's error.
"""

from pathlib import Path

import dagster as dg

import assets
import checks
import resources
from ml_release.home import spec_path
from ml_release.jobs import build_coverage_job, build_rollback_job, build_train_job, release_jobs
from ml_release.sensors import build_artifact_sensor, build_blocked_run_sensor
from ml_release.spec import ReleaseSpec, load_spec

# Runs launched from the UI or the sensor run each step in its own process. Forking them from
# a server that imported this module once takes a step's start from ~8 s to well under one.
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["ml_release.definitions"]}}}
)


def build_definitions(
    spec: ReleaseSpec, resource_overrides: dict[str, dg.ConfigurableResource] | None = None
) -> dg.Definitions:
    """Definitions for one release spec, on the embedded defaults unless overridden."""
    jobs = release_jobs(spec.canary.enabled)
    release = next(job for job in jobs if job.name == "release")
    training = [build_train_job(spec)] if spec.model.task != "llm" else []
    return dg.Definitions(
        assets=assets.build_assets(spec),
        asset_checks=checks.build_checks(spec),
        resources={**resources.local_resources(spec), **(resource_overrides or {})},
        jobs=[
            *jobs,
            *training,
            build_rollback_job(spec.model.name),
            build_coverage_job(spec),  # every task: tabular and LLM failure modes
        ],
        sensors=[build_artifact_sensor(spec), build_blocked_run_sensor(spec, release)],
        executor=STEP_EXECUTOR,
    )


def build_replay_definitions(spec: ReleaseSpec, responses_dir: Path) -> dg.Definitions:
    """Definitions whose LLM answers are the recordings in `responses_dir` (coverage runs)."""
    from resources.llm import ReplayLLMResource

    return build_definitions(
        spec, {"llm_client": ReplayLLMResource(responses_dir=str(responses_dir))}
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `workspace.yaml` loads."""
    return build_definitions(load_spec(spec_path()))
