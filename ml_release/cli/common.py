"""What every `ml-release` command shares: the console, the spec, the registry, the instance."""

import os
import sys
from pathlib import Path

from rich.console import Console

from ml_release.home import HOME_ENV, SPEC_ENV, artifacts_dir, release_home, spec_path
from ml_release.spec import ReleaseSpec
from ml_release.spec_set import load_specs

# Wide enough for the verdict table when output goes to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 140)


def use_spec(spec: str | None) -> None:
    """Make `--spec` the spec of this process (and of the processes it starts).

    The home follows the spec's project (`ml_release.home.release_home`), so the spec must be
    known before anything opens the registry or the warehouse.
    """
    if spec:
        os.environ[SPEC_ENV] = str(Path(spec).resolve())


def load(args) -> ReleaseSpec:
    """The release spec of this command (`--spec`, `$ML_RELEASE_SPEC` or ./release.yaml).

    A folder of specs gates several models: `--model` picks one (required there).
    """
    return load_specs(spec_path()).pick(getattr(args, "model", None))


def load_all(args) -> list[ReleaseSpec]:
    """`--model`'s spec, else every spec of `--spec` (a file, or a folder of them)."""
    specs = load_specs(spec_path())
    model = getattr(args, "model", None)
    return [specs.pick(model)] if model else list(specs.specs)


def model_of(args) -> str:
    """`--model`, else the spec's model name."""
    return getattr(args, "model", None) or load(args).model.name


def production_key(model: str) -> list[str]:
    """The `production_model` asset key of `model`: prefixed where a spec folder gates several.

    A spec that no longer loads (a rollback during an incident) counts as unprefixed.
    """
    from ml_release import keys
    from ml_release.errors import SpecError

    try:
        scoped = load_specs(spec_path()).many
    except SpecError:
        scoped = False
    return keys.key_path(model if scoped else "", keys.PRODUCTION_MODEL)


LOCK_TIMEOUT_ENV = "ML_RELEASE_LOCK_TIMEOUT"


def lock_timeout() -> float:
    """Seconds a command waits for another process's registry lock (`$ML_RELEASE_LOCK_TIMEOUT`)."""
    return float(os.environ.get(LOCK_TIMEOUT_ENV) or 30.0)


def registry():
    """The configured registry (`ml_release.registry.location`), for commands that write."""
    from ml_release.registry import open_registry

    return open_registry(lock_timeout=lock_timeout())


def reader():
    """The configured registry for reading: it never waits on a writer.

    A server registry is read live; a held DuckDB file through its last snapshot.
    """
    from ml_release.registry import open_reader

    return open_reader()


def store() -> Path:
    """The artifact store of this home."""
    return artifacts_dir()


def home_line() -> str:
    """Which state a command used, for every verdict table and `status`."""
    from ml_release.registry.location import REGISTRY_URL_ENV, describe

    source = "ML_RELEASE_HOME" if os.environ.get(HOME_ENV) else f"project of {spec_path().name}"
    line = f"home: {release_home()} ({source})"
    if os.environ.get(REGISTRY_URL_ENV):
        line += f"; registry: {describe()} ({REGISTRY_URL_ENV})"
    return line


def instance():
    """The persistent Dagster instance of this home."""
    from ml_release.home import dagster_home
    from ml_release.jobs import ensure_instance

    return ensure_instance(dagster_home())


def sync_production_asset(model: str) -> None:
    """Bring `production_model`'s history in the instance up to the ledger (crash catch-up).

    Serialized by a file lock beside the instance, so two commands never report one ledger
    event twice.
    """
    import fcntl

    from ml_release.home import dagster_home
    from ml_release.jobs import sync_production

    folder = dagster_home()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".production-sync.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sync_production(instance(), registry(), model, store(), production_key(model))


SYNC_CODE = (
    "import sys; from ml_release.cli.common import sync_production_asset as s; s(sys.argv[1])"
)


def sync_production_in_background(model: str) -> Path:
    """Report a production change to the Dagster instance from a detached process.

    Importing Dagster takes seconds; a rollback during an incident should not wait for it. The
    ledger is already committed (the source of truth); the catch-up is idempotent and any later
    command repeats it if this process dies. Returns the log file of the process.
    """
    import subprocess

    log = release_home() / "logs" / "production-sync.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-c", SYNC_CODE, model],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, SPEC_ENV: str(spec_path()), HOME_ENV: str(release_home())},
        )
    return log
