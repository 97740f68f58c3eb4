"""The one place that chooses which registry a process uses, from configuration.

In order: an explicit setting (the `model_registry` resource's `url`), else
`$ML_RELEASE_REGISTRY_URL`, else the embedded DuckDB file `ML_RELEASE_HOME/registry.duckdb`.
A setting must be a `postgresql://` URL; anything else is refused with the variable that held
it (its password masked) and the fix. The CLI, the jobs, the resources and the sensors open
the registry through `open_registry` / `open_reader`; only scratch registries (coverage runs,
benchmarks, tests) name a file directly.
"""

import os
from pathlib import Path

from ml_release.errors import ConfigurationError
from ml_release.home import registry_path
from ml_release.registry.core import Registry
from ml_release.registry.postgres import is_postgres_url, redacted
from ml_release.registry.snapshot import SnapshotRegistry, open_for_reading

REGISTRY_URL_ENV = "ML_RELEASE_REGISTRY_URL"


def _checked(value: str, origin: str) -> str:
    if not is_postgres_url(value):
        raise ConfigurationError(
            f"{origin} is {redacted(value)!r}, which is not a PostgreSQL URL. Expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE; unset it to use the embedded "
            "registry file (ML_RELEASE_HOME/registry.duckdb)."
        )
    return value


def registry_location(setting: str = "", path: Path | str | None = None) -> str | Path:
    """The configured registry: `setting`, else $ML_RELEASE_REGISTRY_URL, else the file.

    Args:
        setting: A `postgresql://` URL from a resource's configuration; empty: not set.
        path: The embedded file to use when no URL is configured (default: the home's).
    """
    if setting:
        return _checked(setting, "the model_registry resource's url")
    configured = os.environ.get(REGISTRY_URL_ENV, "")
    if configured:
        return _checked(configured, REGISTRY_URL_ENV)
    return Path(path) if path is not None else registry_path()


def open_registry(
    setting: str = "", path: Path | str | None = None, lock_timeout: float = 30.0
) -> Registry:
    """The configured registry, for reading and writing."""
    return Registry(registry_location(setting, path), lock_timeout)


def open_reader(setting: str = "", path: Path | str | None = None) -> Registry | SnapshotRegistry:
    """The configured registry for reading: never waits on a writer.

    A server registry is read live (readers take no lock); the embedded file is read live when
    it opens within seconds, else from its last snapshot.
    """
    location = registry_location(setting, path)
    if isinstance(location, Path):
        return open_for_reading(location)
    return Registry(location)


def describe(setting: str = "") -> str:
    """Which registry is configured, for `status` and logs (never with a password)."""
    location = registry_location(setting)
    return str(location) if isinstance(location, Path) else redacted(location)
