"""Watching `incoming/`: which published artifacts are complete, which are broken.

`scan_incoming` is the pure core of `new_model_artifact_sensor`. An artifact is ready only when
its manifest is present and the model file's digest matches it; anything else waits for a
grace period (a copy may still be in progress) and is then quarantined with its reason. Ages
are measured from when the sensor first saw a folder, not from file times, so clock skew
between a writer and this machine cannot make a half-written folder look old.
"""

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ml_release.artifacts import Manifest, verify_artifact
from ml_release.errors import ReleaseError

GRACE_SECONDS = 120.0


@dataclass
class Scan:
    """What one look at `incoming/` found."""

    ready: list[tuple[Manifest, Path]] = field(default_factory=list)
    done: list[Path] = field(default_factory=list)
    waiting: list[tuple[Path, str]] = field(default_factory=list)
    quarantined: list[tuple[Path, str]] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)


def quarantine(entry: Path, reason: str, quarantine_root: Path) -> Path:
    """Move a bad entry of `incoming/` to `quarantine/`, with a REASON.txt.

    A folder becomes the quarantine folder; a file or a symlink (never followed) is moved into
    a new one.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_root / f"{entry.name}-{stamp}"
    quarantine_root.mkdir(parents=True, exist_ok=True)
    # shutil.move renames, or copies across filesystems; a symlink is moved as a link.
    if entry.is_dir() and not entry.is_symlink():
        shutil.move(entry, target)
    else:
        target.mkdir()
        shutil.move(entry, target / entry.name)
    (target / "REASON.txt").write_text(reason + "\n")
    return target


def run_key(manifest) -> str:
    """The sensor's key of an artifact: one release run per model and digest.

    The same model file published for two models of a location is gated by each (each judges
    it on its own data), so the digest alone is not the key.
    """
    return f"{manifest.name}:{manifest.sha256}"


def scan_incoming(
    incoming: Path,
    quarantine_root: Path,
    requested: set[str],  # the `run_key`s the sensor requested runs for
    first_seen: dict[str, float],
    now: float,
    grace_seconds: float = GRACE_SECONDS,
) -> Scan:
    """Classify every folder in `incoming/`; quarantines those past the grace period."""
    scan = Scan()
    if not incoming.is_dir():
        return scan
    for folder in sorted(p for p in incoming.iterdir() if not p.name.startswith(".")):
        key = str(folder)
        seen = first_seen.get(key, now)
        if folder.is_symlink() or not folder.is_dir():
            reason = "not an artifact folder (a plain file or a symlink)"
            scan.quarantined.append((quarantine(folder, reason, quarantine_root), reason))
            continue
        try:
            manifest = verify_artifact(folder)
        except (ReleaseError, OSError) as exc:
            if now - seen < grace_seconds:
                scan.waiting.append((folder, str(exc)))
                scan.first_seen[key] = seen
            else:
                reason = f"invalid after {grace_seconds:.0f} s: {exc}"
                scan.quarantined.append((quarantine(folder, reason, quarantine_root), reason))
            continue
        if run_key(manifest) in requested or manifest.sha256 in requested:  # (older cursors)
            scan.done.append(folder)
        else:
            scan.ready.append((manifest, folder))
    return scan
