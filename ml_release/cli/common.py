"""What every `ml-release` command shares: the console, the spec, the registry, the instance."""

import os
import sys
from pathlib import Path

from rich.console import Console

from ml_release.home import HOME_ENV, SPEC_ENV, artifacts_dir, release_home, spec_path
from ml_release.spec import ReleaseSpec, load_spec

# Wide enough for the verdict table when output goes to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 140)


def use_spec(spec: str | None) -> None:
    """Make `--spec` the spec of this process (and of the processes it starts).

    The home follows the spec's project (`ml_release.home.release_home`), so the spec must be
    known before anything opens the registry or the warehouse.
    """
    if spec:
        os.environ[SPEC_ENV] = str(Path(spec).resolve())


def _use_project(spec_file: Path) -> None:
    # The checkout's assets/checks/resources (and user feature code) import from the project
    # root, as Dagster's workspace.yaml `working_directory` does: the spec's project, else the
    # checkout we run in.
    from ml_release.home import WORKSPACE_FILE, project_root

    roots = [project_root(spec_file)]
    roots += [f for f in (Path.cwd(), *Path.cwd().parents) if (f / WORKSPACE_FILE).is_file()][:1]
    for root in reversed(roots):
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))


def load(args) -> ReleaseSpec:
    """The release spec of this command (`--spec`, `$ML_RELEASE_SPEC` or ./release.yaml)."""
    path = spec_path()
    _use_project(path)
    return load_spec(path)


def model_of(args) -> str:
    """`--model`, else the spec's model name."""
    return args.model or load(args).model.name


def registry():
    """The registry of this home, for commands that write."""
    from ml_release.home import registry_path
    from ml_release.registry import Registry

    return Registry(registry_path())


def reader():
    """The registry for reading: live, or its last snapshot while another process holds it."""
    from ml_release.home import registry_path
    from ml_release.registry import open_for_reading

    return open_for_reading(registry_path())


def store() -> Path:
    """The artifact store of this home."""
    return artifacts_dir()


def home_line() -> str:
    """Which state a command used, for every verdict table and `status`."""
    source = "ML_RELEASE_HOME" if os.environ.get(HOME_ENV) else f"project of {spec_path().name}"
    return f"home: {release_home()} ({source})"


def instance():
    """The persistent Dagster instance of this home."""
    from ml_release.home import dagster_home
    from ml_release.instance import ensure_instance

    return ensure_instance(dagster_home())


def sync_production_asset(model: str) -> None:
    """Bring `production_model`'s history in the instance up to the ledger (crash catch-up)."""
    from ml_release.instance import sync_production

    sync_production(instance(), registry(), model, store())
