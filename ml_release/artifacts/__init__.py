"""Immutable model artifacts: a folder holding `model.skops` and `manifest.json`, nothing else.

- `ml_release.artifacts.manifest`: the manifest, verification, safe paths (light, re-exported
  here);
- `ml_release.artifacts.writer`: `write_artifact`, `publish_candidate`;
- `ml_release.artifacts.skops_io`: reproducible skops bytes and `load_model`, the loading
  security boundary.
"""

from ml_release.artifacts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    ArtifactInputError,
    Manifest,
    UnsafeArtifactError,
    UnsafePathError,
    file_sha256,
    read_manifest,
    safe_path,
    verify_artifact,
)

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ArtifactInputError",
    "Manifest",
    "UnsafeArtifactError",
    "UnsafePathError",
    "file_sha256",
    "read_manifest",
    "safe_path",
    "verify_artifact",
]
