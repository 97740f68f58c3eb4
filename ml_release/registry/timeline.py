"""Production's history read from the ledger: what was live when, and what is known-good.

Known-good is a property, not a pointer. A version is a rollback target when it entered
production through its gates (`promoted`) or a recorded override (`overridden`), and it was not
rolled away from since. Its artifact must also verify, which `ml_release.rollback` checks
against the store. Nothing here reads the store: these are pure functions of the events.
"""

from collections.abc import Iterable

from ml_release.registry.records import PROMOTION_EVENTS, Event


def last_change(events: Iterable[Event]) -> Event | None:
    """The most recent event that moved production (promotion, override or rollback)."""
    changes = [e for e in events if e.event in (*PROMOTION_EVENTS, "rolled_back")]
    return changes[-1] if changes else None


def not_known_good(events: list[Event], version: str) -> str | None:
    """Why `version` is not a rollback target by its history, or None when it is one."""
    promoted = [e.seq for e in events if e.event in PROMOTION_EVENTS and e.version == version]
    if not promoted:
        gated = [e.event for e in events if e.version == version and e.event != "registered"]
        if "blocked" in gated:
            return f"{version} was blocked by its gates and never promoted to production"
        if "refused" in gated:
            return f"{version} was refused at the door (unsafe or invalid artifact)"
        if gated and gated[-1] == "rolled_back":
            return f"{version} was only rolled back to, never promoted by its gates"
        return f"{version} was never promoted to production"
    away = [e for e in events if e.event == "rolled_back" and e.from_version == version]
    if away and away[-1].seq > promoted[-1]:
        return (
            f"{version} was rolled away from at ledger #{away[-1].seq} "
            f"({away[-1].reason or 'no reason given'})"
        )
    return None


def former_production(events: list[Event], production: str | None) -> list[str]:
    """Versions that were live before, most recently live first, without `production`."""
    order: list[str] = []
    for event in reversed(events):
        if event.event not in (*PROMOTION_EVENTS, "rolled_back"):
            continue
        for version in (event.version, event.from_version):
            if version and version != production and version not in order:
                order.append(version)
    return order
