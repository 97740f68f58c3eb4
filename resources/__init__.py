"""Dagster resources: thin, configurable wrappers around ml_release classes."""

import dagster as dg
from pydantic import Field

from ml_release.home import reports_dir, warehouse_path
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


def local_resources() -> dict[str, dg.ConfigurableResource]:
    """The embedded defaults: everything under ML_RELEASE_HOME."""
    return {
        "warehouse": WarehouseResource(path=str(warehouse_path())),
        "report_store": ReportStoreResource(path=str(reports_dir())),
    }
