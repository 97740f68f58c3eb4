"""The model registry: versions, the `production` alias, and the append-only ledger.

`Registry` is the writer and reader, on the embedded DuckDB file or on PostgreSQL;
`open_registry` / `open_reader` open the one the configuration names
(`ml_release.registry.location`); `open_for_reading` gives read-only commands the live file
or, while another process holds it, its last snapshot; `ml_release.registry.timeline` reads
production's history and known-good versions from the ledger.
"""

from ml_release.registry.core import Registry, RegistryReads, default_actor
from ml_release.registry.location import (
    REGISTRY_URL_ENV,
    open_reader,
    open_registry,
    registry_location,
)
from ml_release.registry.records import (
    PRODUCTION,
    PRODUCTION_EVENTS,
    PROMOTION_EVENTS,
    RUN_EVENTS,
    Event,
    Version,
)
from ml_release.registry.snapshot import SnapshotRegistry, open_for_reading

__all__ = [
    "PRODUCTION",
    "PRODUCTION_EVENTS",
    "PROMOTION_EVENTS",
    "REGISTRY_URL_ENV",
    "RUN_EVENTS",
    "Event",
    "Registry",
    "RegistryReads",
    "SnapshotRegistry",
    "Version",
    "default_actor",
    "open_for_reading",
    "open_reader",
    "open_registry",
    "registry_location",
]
