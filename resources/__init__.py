"""Dagster resources: thin, configurable wrappers around ml_release classes."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_release.home import (
    artifacts_dir,
    incoming_dir,
    quarantine_dir,
    registry_path,
    release_home,
    reports_dir,
    warehouse_path,
)
from ml_release.registry import Registry, open_registry
from ml_release.serving.environment import feature_code_paths, runtime_python, runtime_root
from ml_release.serving.router import LocalRouter
from ml_release.serving.server import ServerOptions
from ml_release.serving.traffic import TrafficSplit
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse
from resources.llm import llm_resource


class WarehouseResource(dg.ConfigurableResource):
    """The embedded DuckDB warehouse (`ML_RELEASE_HOME/warehouse.duckdb` by default).

    Where one location gates several models, each has its own file: `path` holds `{model}`
    (`ML_RELEASE_HOME/warehouses/{model}.duckdb`), so their releases never share a lock or a pool.
    """

    path: str = Field(description="DuckDB database file; `{model}` is replaced by the model.")
    lock_timeout_seconds: float = Field(
        120.0, description="How long to wait for another process's lock before failing."
    )

    def get(self, model: str = "") -> Warehouse:
        """The warehouse client (of `model`, where the path names one file per model)."""
        return Warehouse(self.path.replace("{model}", model), self.lock_timeout_seconds)


class ReportStoreResource(dg.ConfigurableResource):
    """Folder for plots and release reports (`ML_RELEASE_HOME/reports` by default)."""

    path: str = Field(description="Folder for plots and reports.")


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry and ledger: PostgreSQL when a URL is configured, else a DuckDB file.

    `url`, else `$ML_RELEASE_REGISTRY_URL`, else the file at `path`
    (`ml_release.registry.location` decides, for every process alike).
    """

    path: str = Field(description="DuckDB file of the registry when no URL is configured.")
    url: str = Field(
        "",
        description="postgresql://USER:PASSWORD@HOST:PORT/DATABASE of a registry database "
        "(set it with dg.EnvVar: it holds a password); empty: $ML_RELEASE_REGISTRY_URL, else "
        "the DuckDB file at `path`.",
    )
    lock_timeout_seconds: float = Field(30.0, description="Wait for another writer this long.")

    def get(self) -> Registry:
        """The registry client."""
        return open_registry(self.url, self.path, self.lock_timeout_seconds)


class ArtifactStoreResource(dg.ConfigurableResource):
    """The immutable artifact store (`ML_RELEASE_HOME/artifacts` by default)."""

    path: str = Field(description="Root folder of `<model>/<version>/` artifacts.")


class ArtifactInboxResource(dg.ConfigurableResource):
    """Where candidates arrive (`incoming/`, watched by the sensor) and refusals go."""

    incoming: str = Field(description="Folder training jobs publish candidates into.")
    quarantine: str = Field(description="Folder refused artifacts are moved to, with a reason.")

    def folders(self) -> tuple[Path, Path]:
        """(incoming, quarantine)."""
        return Path(self.incoming), Path(self.quarantine)


class ServingRuntimeResource(dg.ConfigurableResource):
    """The serving runtime (MLServer in its own virtualenv, built on first use)."""

    runtime_dir: str = Field(description="Folder of the runtime virtualenvs.")

    def options(
        self, spec: ReleaseSpec, app_dir: Path, progress: Callable[[str], None]
    ) -> ServerOptions:
        """How to start model servers for `spec` (builds the environment when missing)."""
        return ServerOptions(
            python=runtime_python(Path(self.runtime_dir), progress=progress),
            ready_timeout=spec.serving.ready_timeout,
            max_request_bytes=spec.serving.max_request_bytes,
            max_rows=spec.serving.max_rows,
            extra_paths=feature_code_paths(spec.features.code, app_dir),
            trusted_types=tuple(spec.trusted_types),
        )


class TrafficSplitResource(dg.ConfigurableResource):
    """The canary's traffic split between production's and the candidate's servers.

    This one opens the local router (`ml_release.serving.router.LocalRouter`): a reverse proxy
    on 127.0.0.1 that the canary replays the logged requests through. A deployment subclasses
    it and overrides `open` to return its platform's split (`TrafficSplit` over KServe's
    `canaryTrafficPercent` or an Argo Rollouts `setWeight` step: docs/deployment.md), and
    binds it as `traffic_split`.
    """

    state_dir: str = Field(
        description="Folder of the in-progress markers (`<model>.json`) a new canary recovers from."
    )

    def state_file(self, model: str) -> Path:
        """The marker of `model`'s canary in progress (its controller's pid and step)."""
        return Path(self.state_dir) / f"{model}.json"

    def open(
        self, production_port: int, candidate_port: int, model: str, timeout_s: float
    ) -> AbstractContextManager[TrafficSplit]:
        """The split for one canary, torn down when its `with` block ends."""
        return LocalRouter(production_port, candidate_port, model, timeout_s=timeout_s)


def local_resources(spec: ReleaseSpec | None = None) -> dict[str, dg.ConfigurableResource]:
    """The embedded defaults: everything under ML_RELEASE_HOME (and `llm_client` for LLMs).

    For a spec among several (`spec.scope`), the warehouse is one file per model.
    """
    llm = {}
    if spec is not None and spec.llm is not None:
        responses = spec.llm.responses
        folder = spec.llm.path(responses, spec.source.parent, release_home()) if responses else None
        llm["llm_client"] = llm_resource(folder)
    per_model = spec is not None and bool(spec.scope)
    return {
        **llm,
        "warehouse": WarehouseResource(
            path=str(warehouse_path(model="{model}" if per_model else ""))
        ),
        "report_store": ReportStoreResource(path=str(reports_dir())),
        "model_registry": ModelRegistryResource(path=str(registry_path())),
        "artifact_store": ArtifactStoreResource(path=str(artifacts_dir())),
        "artifact_inbox": ArtifactInboxResource(
            incoming=str(incoming_dir()), quarantine=str(quarantine_dir())
        ),
        "serving_runtime": ServingRuntimeResource(runtime_dir=str(runtime_root())),
        "traffic_split": TrafficSplitResource(state_dir=str(release_home() / "canary")),
    }
