"""Refusal at the door: what an artifact must be before incoming/, the store or the registry.

`admit` is the one gate every way in goes through (`ml-release register`, the artifact sensor,
`ml-release run --candidate`). It checks, before anything is copied: the folder is a real
folder holding a manifest; the payload's digest matches the manifest; the manifest names the
spec's model; the payload is safe to load (skops with allowed types only, never a pickle); the
version label is not registered with another digest. A refused artifact is quarantined with a
`REASON.txt` (moved out of `incoming/`, copied when it is the user's own folder) and the
ledger records a `refused` event naming its digest and what was wrong.
"""

import shutil
from datetime import UTC, datetime
from pathlib import Path

from ml_release.artifacts import MANIFEST_FILE, Manifest, file_sha256, read_manifest
from ml_release.artifacts.manifest import UnsafeArtifactError, verified_bytes
from ml_release.errors import ConflictError, IntegrityError, NotFoundError
from ml_release.registry import Registry


class WrongModelError(IntegrityError):
    """The artifact's manifest names another model than the release spec's."""


def quarantine(entry: Path, reason: str, quarantine_root: Path, *, copy: bool = False) -> Path:
    """Put a refused entry in `quarantine/` with a REASON.txt; returns its quarantine folder.

    A folder becomes (or, with `copy`, is copied to) the quarantine folder; a file or a
    symlink (never followed) is moved or copied into a new one.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_root / f"{entry.name}-{stamp}"
    quarantine_root.mkdir(parents=True, exist_ok=True)
    if entry.is_dir() and not entry.is_symlink():
        if copy:
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.move(entry, target)  # a rename, or a copy across filesystems
    else:
        target.mkdir()
        if copy:
            shutil.copy2(entry, target / entry.name, follow_symlinks=False)
        else:
            shutil.move(entry, target / entry.name)
    (target / "REASON.txt").write_text(reason + "\n")
    return target


def screen(folder: Path, model: str, trusted: tuple[str, ...] | list[str] = ()) -> Manifest:
    """Check an artifact folder without loading it; its manifest when it may come in.

    `trusted`: the spec's `trusted_types:` (never the artifact's own word).

    Raises:
        IntegrityError: Not an artifact folder, a digest mismatch, or the wrong model.
        UnsafeArtifactError: The payload is not skops or names types outside the allow-list.
    """
    if folder.is_symlink() or not folder.is_dir():
        raise IntegrityError(f"{folder} is not an artifact folder (a plain file or a symlink)")
    manifest, data = verified_bytes(folder, keep=True)
    if manifest.name != model:
        raise WrongModelError(
            f"{folder}/{MANIFEST_FILE} names model {manifest.name!r}, but this release spec "
            f"gates {model!r}. Publish it with the spec of {manifest.name!r} (--spec), or "
            "fix the name the training job writes."
        )
    where = f"{folder}/{manifest.payload_file}"
    if manifest.kind == "model":
        from ml_release.artifacts.skops_io import check_skops

        check_skops(data, where, manifest.trusted_types or (), trusted)
    else:
        from ml_release.llm.candidate import check_config_bytes

        check_config_bytes(data, where)
    return manifest


def _payload_digest(folder: Path) -> str | None:
    try:
        payload = read_manifest(folder).payload_file
    except (IntegrityError, OSError):
        payload = "model.skops"
    path = folder / payload
    if path.is_symlink() or not path.is_file():
        return None
    return file_sha256(path)


def admit(
    folder: Path,
    model: str,
    registry: Registry,
    quarantine_root: Path,
    *,
    source: str,
    copy: bool,
    trusted: tuple[str, ...] | list[str] = (),
) -> Manifest:
    """Screen `folder` for `model`; refuse (quarantine, ledger, raise) or return its manifest.

    Args:
        folder: The artifact folder offered.
        model: The spec's model name.
        registry: Where versions are registered and the refusal is recorded.
        quarantine_root: `quarantine/` of the home.
        source: Which way it came in (`register`, `sensor`, `run --candidate`), for the ledger.
        copy: Copy into quarantine (the user's own folder stays) instead of moving it.
        trusted: The spec's `trusted_types:`.

    Raises:
        IntegrityError: Unsafe, corrupt, or another model's artifact (exit 4).
        ConflictError: Its version is registered with another digest (exit 3).
    """
    manifest: Manifest | None = None
    try:
        manifest = screen(folder, model, trusted)
        try:
            registered = registry.version(model, manifest.version)
        except NotFoundError:
            registered = None
        if registered is not None and registered.digest != manifest.sha256:
            raise ConflictError(
                f"{model} version {manifest.version!r} is already registered with digest "
                f"{registered.digest[:12]}, and {folder} has {manifest.sha256[:12]}. A version "
                "is immutable: publish the new model under another version."
            )
        return manifest
    except (IntegrityError, ConflictError) as exc:
        refuse(folder, exc, model, registry, quarantine_root, source=source, copy=copy)
        raise


def refuse(
    folder: Path,
    error: Exception,
    model: str,
    registry: Registry,
    quarantine_root: Path,
    *,
    source: str,
    copy: bool,
) -> Path:
    """Quarantine `folder` and record a `refused` event for `error`; the quarantine folder."""
    try:
        manifest: Manifest | None = read_manifest(folder)
    except (IntegrityError, OSError):
        manifest = None
    digest = _payload_digest(folder) if folder.is_dir() and not folder.is_symlink() else None
    target = quarantine(folder, f"refused ({source}): {error}", quarantine_root, copy=copy)
    registry.record(
        model,
        "refused",
        version=manifest.version if manifest else None,
        digest=digest,
        reason=str(error),
        lineage={
            "source": source,
            "quarantined": f"{quarantine_root.name}/{target.name}",
            "error": type(error).__name__,
            "refused_types": getattr(error, "refused", []),
        },
    )
    return target


__all__ = ["UnsafeArtifactError", "WrongModelError", "admit", "quarantine", "refuse", "screen"]
