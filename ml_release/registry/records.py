"""What the registry holds: registered versions, ledger events, and their vocabulary."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PRODUCTION = "production"

# Events that move the `production` alias. `overridden` is a promotion over failed gates,
# approved by a named person; `rolled_back` moves production to a former version.
PROMOTION_EVENTS = ("promoted", "overridden")
PRODUCTION_EVENTS = (*PROMOTION_EVENTS, "rolled_back")
# Every event of a release run's outcome, as `history` lists them.
RUN_EVENTS = ("blocked", "gated", "stale", "errored", "refused", "canary_aborted")


@dataclass(frozen=True)
class Version:
    """A registered model version.

    `path` is the artifact folder relative to the artifact store's root (`<model>/<version>`);
    registries written before paths were relative hold absolute paths.
    """

    model: str
    version: str
    digest: str
    path: str
    manifest: dict[str, Any]
    registered_at: datetime


@dataclass(frozen=True)
class Event:
    """One ledger row."""

    seq: int
    recorded_at: datetime
    model: str
    event: str
    actor: str
    version: str | None
    digest: str | None
    from_version: str | None = None
    reason: str | None = None
    spec_hash: str | None = None
    verdicts: list[dict] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)


EVENT_COLUMNS = (
    "seq, recorded_at, model, event, actor, version, digest, from_version, reason, spec_hash, "
    "verdicts, lineage"
)
VERSION_COLUMNS = "model, version, digest, path, manifest, registered_at"
