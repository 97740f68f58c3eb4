"""Which prompt/config version was in production at a given time, from the ledger."""

from datetime import datetime

from ml_release.registry import PRODUCTION_EVENTS, Registry


def production_at(registry: Registry, model: str, when: datetime) -> str | None:
    """The version `production` named at `when` (None before the first release).

    Read from the ledger's promotions and rollbacks, so it holds for any past time, not only
    for the current alias. `when` must be timezone-aware.
    """
    if when.tzinfo is None:
        raise ValueError(f"{when} has no timezone: pass an aware datetime (e.g. UTC)")
    live = None
    for event in registry.events(model, PRODUCTION_EVENTS):
        if event.recorded_at > when:
            break
        live = event.version
    return live
