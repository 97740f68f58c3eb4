"""Writing artifacts: skops into a temporary folder, fsynced, renamed into place in one step.

A folder named `<model>-<version>` is therefore complete or absent. skops output is made
byte-for-byte reproducible, so re-publishing the same model under the same version is a no-op
and another model under it is a conflict.
"""

import errno
import hashlib
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import sklearn
import skops
import skops.io as sio
from pydantic import ValidationError

from ml_release.artifacts.allowlist import spec_trusted
from ml_release.artifacts.manifest import (
    COMMIT_PATTERN,
    MANIFEST_FILE,
    MODEL_FILE,
    TEMP_PREFIX,
    ArtifactInputError,
    FeatureColumn,
    LibraryVersions,
    Manifest,
    check_name,
    check_version,
    verify_artifact,
)
from ml_release.artifacts.outputs import check_fitted, model_columns, output_schema
from ml_release.artifacts.skops_io import disallowed_content, file_nodes, skops_bytes
from ml_release.errors import ConflictError
from ml_release.faults import fault_point
from ml_release.home import release_home

STALE_TEMP_SECONDS = 3600.0


def current_code_version() -> str | None:
    """The git commit of the current directory's repository, or None (never fails)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and COMMIT_PATTERN.match(commit) else None


def _feature_columns(features: Mapping[str, str] | Iterable[Mapping[str, str]]) -> list:
    if isinstance(features, Mapping):
        return [FeatureColumn(name=name, dtype=kind) for name, kind in features.items()]
    return [FeatureColumn(**dict(column)) for column in features]


def _write_synced(path: Path, data: bytes) -> None:
    fault_point("artifact:write", path=path)  # where tests fill the disk
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(parent: Path) -> None:
    # Left by writers that died; the age guard spares writers on other hosts sharing the folder.
    for leftover in parent.glob(f"{TEMP_PREFIX}*"):
        owner = leftover.name.split("-")[1] if leftover.name.count("-") >= 2 else ""
        alive = owner.isdigit() and psutil.pid_exists(int(owner))
        try:
            old = time.time() - leftover.lstat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:
            continue  # removed meanwhile by another writer
        if not alive and old:
            shutil.rmtree(leftover, ignore_errors=True)


def _new_temp(parent: Path) -> Path:
    """A new temporary folder of this process in `parent` (created), stale ones removed."""
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(parent)
    temp = parent / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    temp.mkdir()
    return temp


def _manifest(**fields: Any) -> Manifest:
    try:
        return Manifest(**fields)
    except ValidationError as exc:
        raise ArtifactInputError(
            f"cannot write the manifest of {fields['name']!r}: {exc}"
        ) from None


def _existing(folder: Path, digest: str) -> Path:
    stored = verify_artifact(folder)
    if stored.sha256 != digest:
        raise ConflictError(
            f"{folder} already holds {stored.name} {stored.version} with digest "
            f"{stored.sha256}; this model's digest is {digest}. Versions are immutable: "
            "publish under another version (or leave version unset)."
        )
    return folder


def _columns(model: Any, name: str, features: Any) -> list[FeatureColumn]:
    try:
        if isinstance(features, Mapping):
            features = model_columns(model, features)
        return _feature_columns(features)
    except (ValidationError, TypeError) as exc:
        raise ArtifactInputError(
            f"features for {name!r} must map raw column -> kind (REQUIRED_COLUMNS) or be "
            f"a list of {{'name', 'dtype'}}: {exc}"
        ) from None


def _serialized(model: Any, name: str, trusted_types: list[str] | tuple[str, ...]) -> bytes:
    """The model's skops bytes, refused when they hold types the allow-list rule does not take."""
    try:
        data = skops_bytes(model)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ArtifactInputError(
            f"skops cannot serialize {type(model).__name__}: {type(exc).__name__}: "
            f"{str(exc)[:300]}. Publish a scikit-learn-API estimator (docs/models.md)."
        ) from exc
    refused = disallowed_content(data, trusted_types)
    if refused:
        raise ArtifactInputError(
            f"model {name!r} contains types ml-release will not load: {', '.join(refused)}. "
            "Review them, and list the ones you trust under `trusted_types:` in the "
            "release spec (docs/models.md)."
        )
    return data


def _library_versions() -> LibraryVersions:
    return LibraryVersions(
        python=platform.python_version(),
        scikit_learn=sklearn.__version__,
        skops=skops.__version__,
        numpy=np.__version__,
    )


def write_artifact(
    model: Any,
    dest_parent: Path,
    *,
    name: str,
    version: str | None = None,
    features: Mapping[str, str] | Iterable[Mapping[str, str]],
    training_data_fingerprint: str | None = None,
    spec_hash: str | None = None,
    feature_code_version: str | None = None,
    extra: Mapping[str, str] | None = None,
    task: str | None = None,
    trusted_types: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write `model` as the artifact folder `dest_parent/<name>-<version>`, atomically.

    Args:
        model: A fitted scikit-learn-API estimator or pipeline taking raw rows (see
            `ml_release.artifacts.outputs`).
        dest_parent: Folder to write into (created if missing).
        name: Model name (an identifier).
        version: Version; default `YYYYMMDDTHHMMSSZ-<first 8 hex of the digest>` (UTC).
        features: Raw input columns: `REQUIRED_COLUMNS` of the feature module, or a list of
            `{"name", "dtype"}`.
        training_data_fingerprint: Fingerprint of the training snapshot.
        spec_hash: Hash of the release spec the model was trained under.
        feature_code_version: Version of the feature module (`FeatureCode.version`).
        extra: Free string map recorded in the manifest.
        task: The spec's `model.task`, which the model's outputs must fit; None: any.
        trusted_types: Types beyond the built-in allow-list rule, from the spec's
            `trusted_types:` (recorded in the manifest when the model needs them).

    Returns:
        The artifact folder; the existing one if this exact model is already there.

    Raises:
        ArtifactInputError: Bad name or version, an unfitted model, outputs that do not fit
            `task`, input columns the features do not declare, or types the allow-list rule
            refuses.
        ConflictError: The folder exists and holds a different model.
    """
    check_name(name)
    if version is not None:
        check_version(version)
    check_fitted(model)
    output = output_schema(model, task)
    columns = _columns(model, name, features)
    dest_parent = Path(dest_parent)
    temp = _new_temp(dest_parent)
    try:
        data = _serialized(model, name, trusted_types)
        digest, now = hashlib.sha256(data).hexdigest(), datetime.now(UTC)
        version = version or f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        final = dest_parent / f"{name}-{version}"
        if final.exists():
            return _existing(final, digest)
        manifest = _manifest(
            name=name,
            version=version,
            sha256=digest,
            size_bytes=len(data),
            created_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            library_versions=_library_versions(),
            features=columns,
            output_schema=output,
            training_data_fingerprint=training_data_fingerprint,
            code_version=current_code_version(),
            feature_code_version=feature_code_version,
            spec_hash=spec_hash,
            extra=dict(extra or {}),
            trusted_types=sio.get_untrusted_types(data=data),
            spec_trusted_types=spec_trusted(file_nodes(data), trusted_types),
            estimator=type(model).__name__,
        )
        payload = {MODEL_FILE: data, MANIFEST_FILE: manifest.model_dump_json(indent=2).encode()}
        return _place(temp, final, payload, digest)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _place(temp: Path, final: Path, files: Mapping[str, bytes], digest: str) -> Path:
    """Write `files` into `temp`, fsync them, rename `temp` to `final` in one step.

    When another writer got there first, its folder is returned if it holds the same bytes
    (`digest`); a different artifact under the same name is a conflict.
    """
    for name, data in files.items():
        _write_synced(temp / name, data)
    _fsync_dir(temp)
    try:
        os.rename(temp, final)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        return _existing(final, digest)  # another writer got there first
    _fsync_dir(final.parent)
    return final


def publish_candidate(
    model: Any,
    *,
    name: str,
    features: Mapping[str, str] | Iterable[Mapping[str, str]],
    home: Path | None = None,
    **kw: Any,
) -> Path:
    """Publish a trained model for release: write its artifact into `<home>/incoming/`.

    This is the one call a training job makes; `new_model_artifact_sensor` picks it up.
    Keyword arguments are those of `write_artifact` (version, training_data_fingerprint,
    spec_hash, feature_code_version, extra). `home` defaults to `ML_RELEASE_HOME`.
    """
    incoming = (home or release_home()) / "incoming"
    return write_artifact(model, incoming, name=name, features=features, **kw)
