"""Writing configuration artifacts (kind `llm_config`): `config.json` and its manifest.

The same guarantees as model artifacts (`ml_release.artifacts.writer`): written into a temporary
folder, fsynced, renamed into place in one step; the same bytes under the same version are a
no-op, other bytes under it a conflict.
"""

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from ml_release.artifacts.manifest import (
    CONFIG_FILE,
    MANIFEST_FILE,
    TEMP_PREFIX,
    check_name,
    check_version,
)
from ml_release.artifacts.writer import (
    _existing,
    _manifest,
    _place,
    _remove_stale_temps,
    current_code_version,
)


def write_config_artifact(
    payload: bytes,
    dest_parent: Path,
    *,
    name: str,
    version: str,
    spec_hash: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write `payload` as the `llm_config` artifact folder `dest_parent/<name>-<version>`.

    Args:
        payload: The canonical config bytes (JSON).
        dest_parent: Folder to write into (created if missing).
        name: Application name (an identifier).
        version: Version label of the config.
        spec_hash: Hash of the release spec it was published under.
        extra: Free string map recorded in the manifest (prompt version, model name, ...).

    Returns:
        The artifact folder; the existing one if these exact bytes are already there.

    Raises:
        ArtifactInputError: Bad name or version.
        ConflictError: The folder exists and holds other bytes.
    """
    check_name(name)
    check_version(version)
    dest_parent = Path(dest_parent)
    dest_parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest_parent)
    digest, now = hashlib.sha256(payload).hexdigest(), datetime.now(UTC)
    final = dest_parent / f"{name}-{version}"
    if final.exists():
        return _existing(final, digest)
    manifest = _manifest(
        name=name,
        version=version,
        kind="llm_config",
        sha256=digest,
        size_bytes=len(payload),
        created_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        code_version=current_code_version(),
        spec_hash=spec_hash,
        extra=dict(extra or {}),
    )
    temp = dest_parent / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    temp.mkdir()
    try:
        files = {CONFIG_FILE: payload, MANIFEST_FILE: manifest.model_dump_json(indent=2).encode()}
        return _place(temp, final, files, digest)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
