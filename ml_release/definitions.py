"""The one composition root: assets, checks, resources and jobs for a release spec.

`dagster dev -w workspace.yaml` loads `defs` from here, built from `$ML_RELEASE_SPEC` (default
`./release.yaml`). A bad spec stops the code location from loading with the spec's error.
"""

import dagster as dg

import assets
import checks
import resources
from ml_release.home import spec_path
from ml_release.jobs import build_rollback_job, release_jobs
from ml_release.sensors import new_model_artifact_sensor
from ml_release.spec import ReleaseSpec, load_spec


def build_definitions(
    spec: ReleaseSpec, resource_overrides: dict[str, dg.ConfigurableResource] | None = None
) -> dg.Definitions:
    """Definitions for one release spec, on the embedded defaults unless overridden."""
    return dg.Definitions(
        assets=assets.build_assets(spec),
        asset_checks=checks.build_checks(spec),
        resources={**resources.local_resources(), **(resource_overrides or {})},
        jobs=[*release_jobs(spec.canary.enabled), build_rollback_job(spec.model.name)],
        sensors=[new_model_artifact_sensor],
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `workspace.yaml` loads."""
    return build_definitions(load_spec(spec_path()))
