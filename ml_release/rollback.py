"""Rollback: `production` back to a known-good version in one verified alias move.

The target (by default the `previous` alias) is verified first: registered, its artifact present
and matching its digest. A missing or corrupt target is refused without changing anything, and
the error names the next known-good version. Nothing is rebuilt: the move is one registry
transaction, recorded in the ledger with its reason.
"""

from dataclasses import dataclass
from pathlib import Path

from ml_release.artifacts import verify_artifact
from ml_release.errors import IntegrityError, NotFoundError, ReleaseError
from ml_release.registry import PREVIOUS, PRODUCTION, PRODUCTION_EVENTS, Event, Registry


@dataclass(frozen=True)
class RollbackOutcome:
    """What a rollback did: the event, or that the target was already in production."""

    model: str
    target: str
    event: Event | None

    @property
    def already_done(self) -> bool:
        """True when nothing had to move (a retried rollback)."""
        return self.event is None


def artifact_ok(registry: Registry, model: str, version: str) -> str | None:
    """None when the version's artifact verifies, else why not."""
    try:
        registered = registry.version(model, version)
        manifest = verify_artifact(Path(registered.path))
    except (ReleaseError, OSError) as exc:
        return str(exc)
    if manifest.sha256 != registered.digest:
        return f"artifact digest {manifest.sha256[:12]} differs from the registered one"
    return None


def known_good(registry: Registry, model: str, exclude: set[str]) -> str | None:
    """The most recent former production version whose artifact still verifies."""
    seen: set[str] = set(exclude)
    for event in reversed(registry.events(model, PRODUCTION_EVENTS)):
        for version in (event.from_version, event.version):
            if version and version not in seen:
                seen.add(version)
                if artifact_ok(registry, model, version) is None:
                    return version
    return None


def rollback(
    registry: Registry, model: str, *, to: str | None = None, reason: str = "", actor: str = ""
) -> RollbackOutcome:
    """Move `production` to `to` (default: `previous`) after verifying its artifact."""
    production = registry.alias(model, PRODUCTION)
    if production is None:
        raise NotFoundError(f"{model} has nothing in production: there is nothing to roll back")
    target = to or registry.alias(model, PREVIOUS)
    if target is None:
        raise NotFoundError(
            f"{model} has no previous version; name one with --to (see `ml-release history`)"
        )
    if target == production:
        return RollbackOutcome(model, target, None)
    problem = artifact_ok(registry, model, target)
    if problem is not None:
        fallback = known_good(registry, model, {production, target})
        hint = (
            f"Next known-good version: {fallback} (`ml-release rollback --to {fallback}`)."
            if fallback
            else "No other former production version has a valid artifact."
        )
        raise IntegrityError(
            f"refusing to roll {model} back to {target}: {problem}. Nothing changed. {hint}"
        )
    fields = {"reason": reason or "rollback", **({"actor": actor} if actor else {})}
    event = registry.move_production(
        model, target, expected=production, event="rolled_back", step="rollback", **fields
    )
    return RollbackOutcome(model, target, event)
