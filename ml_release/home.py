"""Where ml-release keeps its state: the `ML_RELEASE_HOME` folder and its well-known paths."""

import os
from pathlib import Path

import psutil

HOME_ENV = "ML_RELEASE_HOME"
SPEC_ENV = "ML_RELEASE_SPEC"
DEFAULT_HOME = ".ml_release"
DEFAULT_SPEC = "release.yaml"


def release_home() -> Path:
    """The state folder: `$ML_RELEASE_HOME`, else `.ml_release/` under the current directory."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / DEFAULT_HOME).resolve()


def spec_path() -> Path:
    """The release spec: `$ML_RELEASE_SPEC`, else `./release.yaml`."""
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC).resolve()


def warehouse_path(home: Path | None = None) -> Path:
    """The DuckDB file that holds datasets, features and evaluation tables."""
    return (home or release_home()) / "warehouse.duckdb"


def temp_dir(home: Path | None = None) -> Path:
    """Scratch space for partial writes, cleared of files left by processes that died."""
    path = (home or release_home()) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.partial"):
        owner = leftover.name.split(".")[-3] if leftover.name.count(".") >= 3 else ""
        if not (owner.isdigit() and psutil.pid_exists(int(owner))):
            leftover.unlink(missing_ok=True)
    return path


def temp_file(name: str, suffix: str, home: Path | None = None) -> Path:
    """A scratch path owned by this process (`name.<pid>.<suffix>.partial`)."""
    return temp_dir(home) / f"{name}.{os.getpid()}.{suffix}.partial"


def reports_dir(home: Path | None = None) -> Path:
    """Folder for plots and release reports."""
    path = (home or release_home()) / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_data_dir(home: Path | None = None) -> Path:
    """Folder the demo data generator writes into."""
    return (home or release_home()) / "demo"


def dagster_home(home: Path | None = None) -> Path:
    """The Dagster instance folder shared by `ml-release run` and `dagster dev`."""
    return Path(os.environ.get("DAGSTER_HOME") or (home or release_home()) / "dagster")


def registry_path(home: Path | None = None) -> Path:
    """The DuckDB file of the model registry and its ledger."""
    return (home or release_home()) / "registry.duckdb"


def artifacts_dir(home: Path | None = None) -> Path:
    """The artifact store: `artifacts/<model>/<version>/`, immutable once written."""
    return (home or release_home()) / "artifacts"


def incoming_dir(home: Path | None = None) -> Path:
    """Where training jobs publish candidates; watched by `new_model_artifact_sensor`."""
    return (home or release_home()) / "incoming"


def quarantine_dir(home: Path | None = None) -> Path:
    """Where invalid incoming artifacts are moved, each with a `REASON.txt`."""
    return (home or release_home()) / "quarantine"
