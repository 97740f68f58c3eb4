"""The artifact store: verified artifacts placed at `artifacts/<model>/<version>/`, immutably.

An artifact enters the store only after its digest is verified, by an atomic rename of a
complete folder (a copy goes to a temporary folder beside the target first). Placing the same
artifact twice is a no-op; a different artifact under an existing version is a conflict.

The registry records each version's folder relative to the store's root. Every load goes
through `registered_folder`: the folder must resolve inside the store (a symlink out of it is
refused, as at registration) and its payload must have the digest the registry holds, not
merely the one its own manifest claims.
"""

import errno
import os
import shutil
import uuid
from pathlib import Path

from ml_release.artifacts import (
    Manifest,
    UnsafePathError,
    read_manifest,
    safe_path,
    verify_artifact,
)
from ml_release.errors import ConflictError, IntegrityError
from ml_release.registry import Registry, RegistryReads, Version


def place_artifact(source: Path, target: Path, *, move: bool = False) -> Manifest:
    """Verify `source` and make it appear at `target` in one rename (idempotent per digest)."""
    manifest = verify_artifact(source)
    if target.exists():
        placed = verify_artifact(target)
        if placed.sha256 != manifest.sha256:
            raise ConflictError(
                f"{target} already holds {manifest.name} {manifest.version} with digest "
                f"{placed.sha256[:12]}; {source} has {manifest.sha256[:12]}. Versions are "
                "immutable: publish under another version."
            )
        if move:
            shutil.rmtree(source)
        return manifest
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        try:
            os.rename(source, target)
            return manifest
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    staging = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        shutil.copytree(source, staging)
        verify_artifact(staging)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if move:
        shutil.rmtree(source)
    return manifest


def store_artifact(source: Path, root: Path, *, move: bool = False) -> tuple[Manifest, Path]:
    """Place a verified artifact at `root/<model>/<version>/`; returns manifest and folder."""
    manifest = read_manifest(source)
    target = safe_path(root, manifest.name, manifest.version)
    return place_artifact(source, target, move=move), target


def registered_folder(store_root: Path, version: Version) -> Path:
    """The folder of a registered version, confined to the store.

    Raises:
        IntegrityError: The folder now resolves outside the store (replaced by a symlink out
            of it, say): refused as it would be at registration.
    """
    recorded = Path(version.path)
    if recorded.is_absolute():  # registries written before paths were relative
        root = Path(store_root).resolve()
        try:
            recorded = recorded.relative_to(root)
        except ValueError:
            recorded = Path(version.model) / version.version
    try:
        return safe_path(store_root, str(recorded))
    except UnsafePathError as exc:
        raise IntegrityError(
            f"{version.model} {version.version}: its artifact folder {recorded} leaves the "
            f"artifact store ({exc}). It was replaced after registration; do not use it."
        ) from None


def verify_registered(store_root: Path, version: Version) -> Manifest:
    """Verify a registered version's artifact against the registry's digest; its manifest."""
    return verify_artifact(registered_folder(store_root, version), version.digest)


def import_artifact(
    source: Path, store_root: Path, registry: Registry, *, move: bool = False
) -> tuple[Version, bool, Path]:
    """Place a screened artifact in the store and register it: (version, created, folder).

    An artifact whose digest is already registered (production's bytes under a new label, a
    re-published model) is not copied again: the registered version is returned and nothing
    is left behind in the store.
    """
    manifest = read_manifest(source)
    existing = registry.by_digest(manifest.name, manifest.sha256)
    if existing is not None:
        if move:
            shutil.rmtree(source, ignore_errors=True)
        return existing, False, registered_folder(store_root, existing)
    target = safe_path(store_root, manifest.name, manifest.version)
    manifest = place_artifact(source, target, move=move)
    registered, created = register_stored(registry, manifest, target, store_root)
    return registered, created, target


def register_stored(
    registry: Registry, manifest: Manifest, folder: Path, store_root: Path | None = None
) -> tuple[Version, bool]:
    """Register a stored artifact by its folder relative to the store (idempotent per digest)."""
    root = Path(store_root).resolve() if store_root else Path(folder).resolve().parents[1]
    relative = Path(folder).resolve().relative_to(root)
    return registry.register(
        manifest.name,
        manifest.version,
        manifest.sha256,
        relative.as_posix(),
        manifest.model_dump(mode="json"),
    )


def version_of(registry: RegistryReads, model: str, digest: str) -> Version:
    """The registered version with `digest`; NotFoundError naming how to register it."""
    from ml_release.errors import NotFoundError

    found = registry.by_digest(model, digest)
    if found is None:
        raise NotFoundError(
            f"{model} has no registered artifact with digest {digest[:12]}: register it with "
            "`ml-release register FOLDER` or gate it with `ml-release run --candidate FOLDER`."
        )
    return found
