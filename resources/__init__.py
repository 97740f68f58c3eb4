"""Dagster resources: thin, configurable wrappers around ml_release classes."""

import dagster as dg
from pydantic import Field

from ml_release.home import artifacts_dir, registry_path, reports_dir, warehouse_path
from ml_release.registry import Registry
from ml_release.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The embedded DuckDB warehouse (`ML_RELEASE_HOME/warehouse.duckdb` by default)."""

    path: str = Field(description="DuckDB database file.")
    lock_timeout_seconds: float = Field(
        120.0, description="How long to wait for another process's lock before failing."
    )

    def get(self) -> Warehouse:
        """The warehouse client."""
        return Warehouse(self.path, self.lock_timeout_seconds)


class ReportStoreResource(dg.ConfigurableResource):
    """Folder for plots and release reports (`ML_RELEASE_HOME/reports` by default)."""

    path: str = Field(description="Folder for plots and reports.")


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry and ledger (`ML_RELEASE_HOME/registry.duckdb` by default)."""

    path: str = Field(description="DuckDB file of the registry.")
    lock_timeout_seconds: float = Field(30.0, description="Wait for another writer this long.")

    def get(self) -> Registry:
        """The registry client."""
        return Registry(self.path, self.lock_timeout_seconds)


class ArtifactStoreResource(dg.ConfigurableResource):
    """The immutable artifact store (`ML_RELEASE_HOME/artifacts` by default)."""

    path: str = Field(description="Root folder of `<model>/<version>/` artifacts.")


def local_resources() -> dict[str, dg.ConfigurableResource]:
    """The embedded defaults: everything under ML_RELEASE_HOME."""
    return {
        "warehouse": WarehouseResource(path=str(warehouse_path())),
        "report_store": ReportStoreResource(path=str(reports_dir())),
        "model_registry": ModelRegistryResource(path=str(registry_path())),
        "artifact_store": ArtifactStoreResource(path=str(artifacts_dir())),
    }
