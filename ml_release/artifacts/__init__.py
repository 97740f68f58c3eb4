"""Immutable artifacts: a folder holding `manifest.json` and one payload, nothing else.

The payload is `model.skops` for a model, `config.json` for an LLM application's prompt/config.

- `ml_release.artifacts.manifest`: the manifest, verification, safe paths (light, re-exported
  here);
- `ml_release.artifacts.writer`: `write_artifact`, `publish_candidate`;
- `ml_release.artifacts.skops_io`: reproducible skops bytes and `load_model`, the loading
  security boundary.
"""

from ml_release.artifacts.manifest import (
    CONFIG_FILE,
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
    "CONFIG_FILE",
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
