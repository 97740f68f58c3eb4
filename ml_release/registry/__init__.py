"""The model registry: versions, the `production` alias, and the append-only ledger.

`Registry` is the writer and reader (embedded DuckDB file by default); `open_for_reading`
gives read-only commands the live registry or, while another process holds the file, its
last snapshot; `ml_release.registry.timeline` reads production's history and known-good
versions from the ledger.
"""

from ml_release.registry.core import Registry, RegistryReads, default_actor
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
    "RUN_EVENTS",
    "Event",
    "Registry",
    "RegistryReads",
    "SnapshotRegistry",
    "Version",
    "default_actor",
    "open_for_reading",
]
