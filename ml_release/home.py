"""Where ml-release keeps its state: the `ML_RELEASE_HOME` folder and its well-known paths.

The home belongs to a project, not to the current directory: without `ML_RELEASE_HOME` it is
`.ml_release/` in the spec's project root (the nearest folder above the spec holding
`workspace.yaml`, else the spec's own folder). So `ml-release --spec path/to/release.yaml run`
from anywhere opens that project's registry, never an empty one.
"""

import os
from pathlib import Path

HOME_ENV = "ML_RELEASE_HOME"
SPEC_ENV = "ML_RELEASE_SPEC"
DEFAULT_HOME = ".ml_release"
DEFAULT_SPEC = "release.yaml"

WORKSPACE_FILE = "workspace.yaml"


def project_root(spec: Path) -> Path:
    """The project a spec belongs to: the nearest folder holding workspace.yaml, else its own."""
    folder = Path(spec).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / WORKSPACE_FILE).is_file():
            return candidate
    return folder


def release_home() -> Path:
    """The state folder: `$ML_RELEASE_HOME`, else `.ml_release/` in the spec's project root."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).resolve()
    return project_root(spec_path()) / DEFAULT_HOME


def spec_path() -> Path:
    """The release spec: `$ML_RELEASE_SPEC`, else `./release.yaml`."""
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC).resolve()


def warehouse_path(home: Path | None = None, model: str = "") -> Path:
    """The DuckDB file that holds datasets, features and evaluation tables.

    `model`: one of several models one location gates (`ReleaseSpec.scope`): its own file.
    """
    root = home or release_home()
    return root / "warehouses" / f"{model}.duckdb" if model else root / "warehouse.duckdb"


def temp_dir(home: Path | None = None) -> Path:
    """Scratch space: the work folders of servers, shadow replays and canaries."""
    path = (home or release_home()) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


# The local Dagster instance's dagster.yaml, written by `ml_release.jobs.ensure_instance`.
INSTANCE_CONFIG = """\
# Written by ml-release: the Dagster instance shared by `ml-release run` and `dagster dev`.
# Steps that touch a DuckDB warehouse run one at a time across runs (DuckDB allows one
# writing process per file); queued runs of one model (UI, sensor) one at a time.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: ml_release/model
        value: {applyLimitPerUniqueValue: true}
        limit: 1
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""
