"""`production_model` materializations: one per ledger event that moved production."""

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.registry import PRODUCTION_EVENTS, Event, RegistryReads


def production_materialization(
    event: Event,
    rollback_target: str | None,
    home: Path | None = None,
    key: list[str] | None = None,
) -> dg.AssetMaterialization:
    """The `production_model` materialization (at `key`) for one ledger event that moved it."""
    return dg.AssetMaterialization(
        asset_key=key or [keys.PRODUCTION_MODEL],
        description=f"{event.event}: {event.reason or ''}",
        metadata={
            "version": event.version,
            "digest": event.digest or "",
            "event": event.event,
            "replaced": event.from_version or "none",
            "reason": event.reason or "",
            "actor": event.actor,
            "ledger_seq": event.seq,
            "rollback_target": rollback_target or "none",
            **({"home": str(home)} if home else {}),
        },
        tags={"dagster/data_version": event.digest or "none"},
    )


def reported_seq(instance: dg.DagsterInstance, key: list[str]) -> int:
    """The ledger sequence number of the last production event the instance has at `key`."""
    found = instance.fetch_materializations(dg.AssetKey(key), limit=1)
    if not found.records:
        return 0
    metadata = found.records[0].asset_materialization.metadata
    return int(getattr(metadata.get("ledger_seq"), "value", 0) or 0)


def unreported(
    instance: dg.DagsterInstance, registry: RegistryReads, model: str, key: list[str]
) -> list[Event]:
    """Ledger events that moved production and are not yet `production_model` events."""
    after = reported_seq(instance, key)
    return [e for e in registry.events(model, PRODUCTION_EVENTS) if e.seq > after]


def report_production(
    instance: dg.DagsterInstance,
    events: Iterable[tuple[Event, str | None]],
    key: list[str] | None = None,
) -> int:
    """Report `production_model` materializations outside a run; how many were reported."""
    from ml_release.faults import fault_point

    count = 0
    for event, target in events:
        fault_point("production:before_report", seq=event.seq)
        instance.report_runless_asset_event(production_materialization(event, target, key=key))
        count += 1
    return count


def sync_production(
    instance: dg.DagsterInstance,
    registry: RegistryReads,
    model: str,
    store_root: Path,
    key: list[str] | None = None,
) -> int:
    """Report every production change the ledger has and the instance lacks (crash catch-up).

    `key`: the `production_model` asset's key (`ReleaseSpec.key`; default: unprefixed).
    """
    from ml_release.rollback import next_known_good

    key = key or [keys.PRODUCTION_MODEL]
    missing = unreported(instance, registry, model, key)
    if not missing:
        return 0
    target = next_known_good(registry, store_root, model)
    return report_production(instance, [(event, target) for event in missing], key)
