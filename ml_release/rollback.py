"""Rollback: `production` back to a known-good version in one verified alias move.

A rollback target must be known-good (`ml_release.registry.timeline`): it entered production by
its gates or a recorded override, was not rolled away from since, and its artifact verifies
against the registry's digest. A plain `rollback` undoes the last promotion: it targets the
most recent known-good former production version. Once production's last change is itself a
rollback, a plain `rollback` is done (a retry does nothing and says so); going further back
takes `--to VERSION`. `--to` a version that is not known-good by its history needs
`--override --reason`, which the ledger records; an artifact that does not verify is never a
target. A refused target changes nothing, and the error names the next known-good version.
Nothing is rebuilt: the move is one registry transaction with its ledger event.
"""

from dataclasses import dataclass
from pathlib import Path

from ml_release.artifacts.manifest import verified_bytes
from ml_release.errors import (
    EXIT_BAD_INPUT,
    IntegrityError,
    NotFoundError,
    ReleaseError,
)
from ml_release.registry import PRODUCTION, Event, Registry, RegistryReads
from ml_release.registry.timeline import former_production, last_change, not_known_good
from ml_release.store import registered_folder


class RollbackRefused(ReleaseError):
    """The named target is not a known-good version (and no override was given)."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class RollbackOutcome:
    """What a rollback did: the event, or why nothing had to move."""

    model: str
    target: str
    event: Event | None
    note: str = ""

    @property
    def already_done(self) -> bool:
        """True when nothing had to move (a retried rollback)."""
        return self.event is None


def artifact_problem(
    registry: RegistryReads,
    store_root: Path,
    model: str,
    version: str,
    screen: bool = False,
    trusted: tuple[str, ...] | list[str] = (),
) -> str:
    """Why `version`'s artifact cannot be trusted, or "" when it verifies against the registry.

    The digest is the registry's (not the folder's own manifest's). With `screen`, the payload is
    also screened as at the door (no pickle, allowed types only): needed only for a version
    that was never live, since a known-good version's bytes were screened and loaded before.
    """
    try:
        registered = registry.version(model, version)
        folder = registered_folder(store_root, registered)
        manifest, data = verified_bytes(folder, keep=screen, expected_digest=registered.digest)
        if screen and manifest.kind == "model":
            from ml_release.artifacts.skops_io import check_skops

            where = f"{folder}/{manifest.payload_file}"
            check_skops(data, where, manifest.trusted_types or (), trusted)
    except (ReleaseError, OSError) as exc:
        return str(exc)
    return ""


def target_problem(
    registry: RegistryReads, store_root: Path, model: str, version: str, events: list[Event]
) -> str:
    """Why `version` is not a rollback target, or "" when it is known-good."""
    return not_known_good(events, version) or artifact_problem(registry, store_root, model, version)


def next_known_good(
    registry: RegistryReads, store_root: Path, model: str, exclude: set[str] = frozenset()
) -> str | None:
    """The most recently live known-good version other than production and `exclude`."""
    registry = registry.state(model)  # one read for the whole walk
    events = registry.events(model)
    production = registry.alias(model, PRODUCTION)
    for version in former_production(events, production):
        if version not in exclude and not target_problem(
            registry, store_root, model, version, events
        ):
            return version
    return None


def _refusal(registry: RegistryReads, store_root: Path, model: str, target: str, problem: str):
    fallback = next_known_good(registry, store_root, model, {target})
    hint = (
        f"Next known-good version: {fallback} (`ml-release rollback --to {fallback}`)."
        if fallback
        else "No other version is known-good."
    )
    return f"refusing to roll {model} back to {target}: {problem}. Nothing changed. {hint}"


def rollback(
    registry: Registry,
    store_root: Path,
    model: str,
    *,
    to: str | None = None,
    reason: str = "",
    actor: str = "",
    override: bool = False,
    trusted: tuple[str, ...] | list[str] = (),
) -> RollbackOutcome:
    """Move `production` to `to` (default: the last known-good) after verifying it.

    Raises:
        NotFoundError: Nothing is in production, or `to` is not registered.
        RollbackRefused: `to` is not known-good by its history and `override` is not set.
        IntegrityError: The target's artifact does not verify (never overridable).
    """
    if override and (to is None or not reason.strip()):
        raise RollbackRefused(
            "--override restores a named version and is recorded with its reason: give both "
            "--to VERSION and --reason TEXT"
        )
    view = registry.state(model)  # one read; the move below is a compare-and-set anyway
    production = view.alias(model, PRODUCTION)
    if production is None:
        raise NotFoundError(f"{model} has nothing in production: there is nothing to roll back")
    events = view.events(model)
    if to is None:
        last = last_change(events)
        if last is not None and last.event == "rolled_back":
            return RollbackOutcome(
                model,
                production,
                None,
                f"production is already {production}, rolled back from {last.from_version} "
                f"(ledger #{last.seq}); to go further back, name a version with --to",
            )
        target = next_known_good(view, store_root, model)
        if target is None:
            raise NotFoundError(
                f"{model} has no known-good version to roll back to (production is "
                f"{production}); see `ml-release history`"
            )
    else:
        target = to
        view.version(model, target)  # NotFoundError naming what exists
    if target == production:
        return RollbackOutcome(model, target, None, f"{target} is already in production")
    history = not_known_good(events, target)
    if history and not override:
        raise RollbackRefused(
            _refusal(view, store_root, model, target, history)
            + f" To restore {target} anyway, add --override --reason TEXT (recorded)."
        )
    if to is not None or history:  # next_known_good verified a target it chose itself
        broken = artifact_problem(
            view, store_root, model, target, screen=bool(history), trusted=trusted
        )
        if broken:
            raise IntegrityError(_refusal(view, store_root, model, target, broken))
    fields = {
        "reason": reason or "rollback",
        "actor": actor,
        "lineage": {"override": True, "not_known_good": history} if history else {},
    }
    event = registry.move_production(
        model, target, expected=production, event="rolled_back", step="rollback", **fields
    )
    return RollbackOutcome(model, target, event)
