"""The artifact store: verified artifacts placed at `artifacts/<model>/<version>/`, immutably.

An artifact enters the store only after its digest is verified, by an atomic rename of a
complete folder (a copy goes to a temporary folder beside the target first). Placing the same
artifact twice is a no-op; a different artifact under an existing version is a conflict.
"""

import errno
import os
import shutil
import uuid
from pathlib import Path

from ml_release.artifacts import Manifest, read_manifest, safe_path, verify_artifact
from ml_release.errors import ConflictError
from ml_release.registry import Registry, Version


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


def register_stored(registry: Registry, manifest: Manifest, folder: Path) -> tuple[Version, bool]:
    """Register a stored artifact (idempotent per digest)."""
    return registry.register(
        manifest.name,
        manifest.version,
        manifest.sha256,
        str(folder),
        manifest.model_dump(mode="json"),
    )
