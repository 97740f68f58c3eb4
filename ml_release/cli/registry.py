"""`ml-release register`, `rollback`, `promote`, `status` and `history`: the registry side."""

import argparse
from pathlib import Path

from ml_release.cli.common import (
    console,
    home_line,
    load,
    model_of,
    reader,
    registry,
    store,
    sync_production_in_background,
)
from ml_release.errors import EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    """Publish an artifact folder or a .skops model file into incoming/ for the sensor.

    The artifact is checked first (digest, model name, safe content, version label); a refused
    one is copied to quarantine/ with its reason and recorded in the ledger.
    """
    from ml_release.home import quarantine_dir
    from ml_release.publish import publish_path

    spec = load(args)
    ledger = registry()
    known = _registered_as(Path(args.path), spec.model.name, ledger)
    folder = publish_path(Path(args.path), spec, ledger, quarantine_dir(), version=args.version)
    console.print(f"published {folder.name} into {folder.parent}")
    if known is not None:  # checked by publish_path: the claimed digest is the real one
        console.print(
            f"already registered as {known}: the sensor gates a digest once, so this changes "
            f"nothing; to gate it again: ml-release run --candidate {args.path}",
            highlight=False,
        )
    return EXIT_OK


def _registered_as(path: Path, model: str, ledger) -> str | None:
    """The version an artifact folder's digest is already registered as, if any."""
    from ml_release.artifacts.manifest import read_manifest
    from ml_release.errors import ReleaseError

    if not path.is_dir():
        return None
    try:
        found = ledger.by_digest(model, read_manifest(path).sha256)
    except ReleaseError:
        return None  # publish_path refuses it with the reason
    return None if found is None else found.version


def model_and_trust(args) -> tuple[str, tuple[str, ...]]:
    """The model and, when the spec is read, its `trusted_types:` (for override checks)."""
    if args.model:
        return args.model, ()
    spec = load(args)
    return spec.model.name, tuple(spec.trusted_types)


def _report(model: str, event) -> None:
    """Say what moved; tell the Dagster instance from a detached process (it takes seconds)."""
    sync_production_in_background(model)
    done = {"rolled_back": "rolled back", "overridden": "promoted by override"}[event.event]
    console.print(
        f"{done} {model}: production {event.from_version or 'none'} -> {event.version} "
        f"(ledger #{event.seq})"
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move production back to the last known-good (or --to) version after verifying it."""
    from ml_release.rollback import rollback

    model, trusted = model_and_trust(args)
    outcome = rollback(
        registry(),
        store(),
        model,
        to=args.to,
        reason=args.reason,
        override=args.override,
        trusted=trusted,
    )
    if outcome.already_done:
        console.print(f"{model}: nothing to do: {outcome.note}")
        sync_production_in_background(model)  # a retry after a crash: catch the UI up
        return EXIT_OK
    _report(model, outcome.event)
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    """Promote a gated VERSION over its failed gates: --override --approver NAME --reason TEXT."""
    from ml_release.override import OverrideRefused, override_promotion

    model, trusted = model_and_trust(args)
    if not args.override:
        raise OverrideRefused(
            "`ml-release promote` only overrides: add --override --approver NAME --reason TEXT. "
            "To promote on the gates, run the release (`ml-release run --candidate FOLDER`)."
        )
    event = override_promotion(
        registry(),
        store(),
        model,
        args.version,
        approver=args.approver,
        reason=args.reason,
        trusted=trusted,
    )
    if event is None:
        console.print(f"{model} {args.version} is already in production: nothing to do")
        sync_production_in_background(model)  # a retry after a crash: catch the UI up
        return EXIT_OK
    console.print(
        f"[yellow]overridden[/]: {event.reason}; failed gates: "
        + (", ".join(event.lineage.get("failed_gates", [])) or "none recorded")
    )
    _report(model, event)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Print the production timeline and every run's outcome, numbered, from the ledger."""
    from ml_release.report import history_table

    model = model_of(args)
    ledger = reader()
    console.print(history_table(model, ledger))
    _snapshot_note(ledger)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print production, the rollback target (both verified) and the latest candidates."""
    from ml_release.report import status_table

    model = model_of(args)
    ledger = reader()
    console.print(status_table(model, ledger, store()))
    console.print(home_line())
    _snapshot_note(ledger)
    return EXIT_OK


def _snapshot_note(ledger) -> None:
    written = getattr(ledger, "written_at", None)
    if written is not None:
        console.print(
            f"[yellow]the registry is held by another process: this is its snapshot of "
            f"ledger #{ledger.last_seq}, written {written:%Y-%m-%d %H:%M:%S}[/]"
        )


__all__ = ["cmd_history", "cmd_promote", "cmd_register", "cmd_rollback", "cmd_status"]
