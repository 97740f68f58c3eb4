"""A justified override: promoting a gated candidate over its failed gates, on the record.

Teams sometimes must ship over a failed gate (a metric's definition changed on purpose). An
override names the version, who approved it and why; it is allowed only for a candidate that
was gated (its verdicts are in the ledger), whose artifact verifies against the registry and
is safe to load, and it moves `production` by the same compare-and-set as a promotion. The
ledger event (`overridden`) lists the gates that had failed, so `history` shows it as such.
"""

from pathlib import Path

from ml_release.artifacts.manifest import verified_bytes
from ml_release.errors import EXIT_BAD_INPUT, ReleaseError
from ml_release.registry import PRODUCTION, Event, Registry
from ml_release.store import registered_folder

GATED_EVENTS = ("blocked", "gated", "stale", "canary_aborted")


class OverrideRefused(ReleaseError):
    """The override is missing its approver or reason, or the version was never gated."""

    exit_code = EXIT_BAD_INPUT


def _check_loadable(
    store_root: Path, registry: Registry, model: str, version: str, trusted: tuple = ()
) -> None:
    registered = registry.version(model, version)
    folder = registered_folder(store_root, registered)
    manifest, data = verified_bytes(folder, keep=True, expected_digest=registered.digest)
    if manifest.kind == "model":
        from ml_release.artifacts.skops_io import check_skops

        where = f"{folder}/{manifest.payload_file}"
        check_skops(data, where, manifest.trusted_types or (), trusted)


def override_promotion(
    registry: Registry,
    store_root: Path,
    model: str,
    version: str,
    *,
    approver: str,
    reason: str,
    actor: str = "",
    trusted: tuple[str, ...] | list[str] = (),
) -> Event | None:
    """Promote `version` over its failed gates; None when it is already in production.

    `trusted`: the spec's `trusted_types:`, for the safety check of the artifact.

    Raises:
        OverrideRefused: No approver or reason, or `version` has no gate verdicts to override.
        IntegrityError: Its artifact does not verify or is not safe to load (never overridden).
        ConflictError: Production moved while the override was being recorded.
    """
    if not approver.strip() or not reason.strip():
        raise OverrideRefused(
            "an override needs --approver NAME and --reason TEXT: both go into the ledger"
        )
    registry.version(model, version)  # NotFoundError naming what exists
    gated = [e for e in registry.events(model, GATED_EVENTS) if e.version == version]
    if not gated:
        raise OverrideRefused(
            f"{model} {version} has never been gated, so there is nothing to override: gate "
            f"it first (`ml-release run --candidate` on its artifact), then override what failed"
        )
    _check_loadable(store_root, registry, model, version, tuple(trusted))
    last = gated[-1]
    failed = [v for v in last.verdicts if not v.get("passed", v.get("verdict") == "pass")]
    current = registry.alias(model, PRODUCTION)
    return registry.move_production(
        model,
        version,
        expected=current,
        event="overridden",
        step="override",
        reason=f"override approved by {approver}: {reason}",
        actor=actor,
        spec_hash=last.spec_hash,
        verdicts=failed,
        lineage={
            "approver": approver,
            "overrides_ledger_seq": last.seq,
            "overridden_event": last.event,
            "failed_gates": [f"{v.get('gate')} ({v.get('dataset')})" for v in failed],
            "baseline": current or "none",
        },
    )
