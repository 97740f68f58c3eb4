"""The skops format: reproducible bytes when writing, and the security boundary when loading.

Loading is the security boundary. `load_model` checks, in this order and before any byte is
parsed as a model: the folder lies inside the store root; `model.skops` is a regular file whose
sha256 matches the manifest; it is a zip (skops) and not a pickle; every type and node kind it
kind it names passes the allow-list rule of `ml_release.artifacts.allowlist` (with the types
the release spec lists under `trusted_types:`). Only then does skops build it, trusting just
the types it needs. The bytes that were hashed are the bytes that are loaded.
"""

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import skops
import skops.io as sio

from ml_release.artifacts.allowlist import BUILT_IN, refused
from ml_release.artifacts.manifest import (
    MODEL_FILE,
    ArtifactInputError,
    UnsafeArtifactError,
    safe_path,
    verified_bytes,
)
from ml_release.errors import (
    IntegrityError,
)
from ml_release.model import FeatureTransformer

MAX_UNPACKED_BYTES = 4 * 1024**3

_SCHEMA = "schema.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("__id__"), int):
            node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
        if node.get("__loader__") == "NdArrayNode" and node.get("type") == "numpy":
            node["file"] = files.setdefault(node["file"], f"{len(files)}.npy")
        elif node.get("__loader__") in ("BytesNode", "BytearrayNode"):  # XGBoost's booster
            node["file"] = files.setdefault(node["file"], f"{len(files)}.bin")
        for value in node.values():
            _renumber(value, ids, files)
    elif isinstance(node, list):
        for value in node:
            _renumber(value, ids, files)


def _zip_entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    entry.create_system, entry.external_attr = 3, 0o644 << 16
    return entry


def skops_bytes(model: Any) -> bytes:
    """`model` in skops format, byte-for-byte equal for equal models.

    skops names arrays and memo entries after `id()` and stamps zip entries with the clock, so
    two dumps of one model differ. Ids are renumbered in order of appearance and entries get a
    fixed time, so a retrained identical model has the same digest.
    """
    raw = sio.dumps(model)
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        schema = json.loads(source.read(_SCHEMA))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        _renumber(schema, ids, files)
        if set(source.namelist()) != {*files, _SCHEMA}:
            raise ArtifactInputError(
                f"skops {skops.__version__} wrote zip entries this module does not know; "
                "update ml_release.artifacts.skops_bytes for this skops version"
            )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for old, new in files.items():
                target.writestr(_zip_entry(new), source.read(old))
            target.writestr(_zip_entry(_SCHEMA), json.dumps(schema, indent=2))
    return out.getvalue()


def _walk(node: Any, found: set[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        if "__loader__" in node:
            module, name, kind = node.get("__module__"), node.get("__class__"), node["__loader__"]
            ok = all(isinstance(v, str) for v in (module, name, kind))
            found.add(
                (str(kind), f"{module}.{name}" if ok else f"<malformed node {str(node)[:80]}>")
            )
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def file_nodes(data: bytes) -> set[tuple[str, str]]:
    """(node kind, type) of every node named in a skops file's schema."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(entry.file_size for entry in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            return {("<too large>", f"<{unpacked} bytes unpacked, more than {MAX_UNPACKED_BYTES}>")}
        found: set[tuple[str, str]] = set()
        _walk(json.loads(archive.read(_SCHEMA)), found)
    return found


def disallowed_content(data: bytes, trusted: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Types and node kinds named anywhere in a skops file that the rule refuses, sorted."""
    return refused(file_nodes(data), trusted)


def check_skops(
    data: bytes,
    where: str,
    declared: list[str] | tuple[str, ...] = (),
    trusted: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The types loading `data` must trust, after the format and allow-list checks.

    Nothing is built: this is the check `ml-release register`, the sensor and `run
    --candidate` apply at the door, and `loads_checked` applies again before loading.
    `trusted` are the spec's `trusted_types:` beyond the built-in rule.

    Raises:
        UnsafeArtifactError: Not a skops file (a pickle, say), unreadable, or naming types or
            node kinds the allow-list rule refuses; `.refused` lists them.
    """
    if data[:1] == b"\x80" or not zipfile.is_zipfile(io.BytesIO(data)):
        seen = "looks like a pickle/joblib file" if data else "it is empty"
        raise UnsafeArtifactError(
            f"{where} is not a skops file ({seen}); ml-release never loads pickles. "
            "Re-save the model with publish_candidate.",
            refused=["not a skops file: " + seen],
        )
    try:
        problems = disallowed_content(data, trusted)
        needed = sio.get_untrusted_types(data=data)
    except (KeyError, ValueError, TypeError, RecursionError, zipfile.BadZipFile) as exc:
        raise UnsafeArtifactError(
            f"{where} is not a readable skops file: {exc}", refused=[f"unreadable: {exc}"]
        ) from None
    allowed = BUILT_IN | set(trusted)
    problems = sorted({*problems, *({*needed, *declared} - allowed)})
    if problems:
        raise UnsafeArtifactError(
            f"{where} names types ml-release does not load: {', '.join(problems)}. Loadable: "
            "scikit-learn estimators skops trusts, XGBoost and LightGBM, numpy and Python data "
            "(docs/models.md); review any other type and list it under `trusted_types:` in "
            "the release spec.",
            refused=problems,
        )
    return needed


def loads_checked(
    data: bytes,
    where: str,
    declared: list[str] | tuple[str, ...] = (),
    written_with: str = "",
    trusted: list[str] | tuple[str, ...] = (),
) -> Any:
    """Build a model from skops bytes after the format and type checks; never a pickle."""
    needed = check_skops(data, where, declared, trusted)
    try:
        return sio.loads(data, trusted=needed)
    except Exception as exc:
        raise IntegrityError(
            f"{where} passed every check but skops {skops.__version__} could not load it "
            f"({type(exc).__name__}: {exc}); written with {written_with or 'unknown versions'}"
        ) from exc


def load_model(
    folder: Path,
    root: Path | None = None,
    *,
    feature_code: str | None = None,
    digest: str | None = None,
    trusted: list[str] | tuple[str, ...] = (),
) -> Any:
    """Load a verified artifact's model, refusing anything but allowed skops content.

    Args:
        folder: The artifact folder (relative to `root` when `root` is given).
        root: Store root the folder must lie in.
        feature_code: When given, the feature module every `FeatureTransformer` must use.
        digest: The registry's digest of this version; the bytes loaded must have it.
        trusted: Types beyond the built-in rule, from the spec's `trusted_types:`.

    Raises:
        UnsafePathError: `folder` is outside `root`.
        IntegrityError: Missing files, a symlink, or a digest mismatch.
        UnsafeArtifactError: Not a skops file, or types the allow-list rule refuses.

    Returns:
        The fitted model (a scikit-learn-API estimator or pipeline taking raw rows).
    """
    folder = safe_path(root, str(folder)) if root is not None else Path(folder)
    manifest, data = verified_bytes(folder, keep=True, expected_digest=digest)
    where = f"{folder}/{MODEL_FILE}"
    if manifest.kind != "model":
        raise UnsafeArtifactError(
            f"{folder} holds an {manifest.kind} artifact, not a model: it has no {MODEL_FILE} "
            "to load"
        )
    model = loads_checked(
        data, where, manifest.trusted_types, str(manifest.library_versions), trusted
    )
    _check_feature_code(model, where, feature_code)
    return model


def _check_feature_code(model: Any, where: str, expected: str | None) -> None:
    # A model without a FeatureTransformer takes the raw columns directly: nothing to check.
    if expected is None:
        return
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    found = [v.code for v in [model, *params.values()] if isinstance(v, FeatureTransformer)]
    if any(code != expected and not _coverage_mutant_of(code, expected) for code in found):
        raise UnsafeArtifactError(
            f"{where} uses feature code {found!r}, expected {expected!r} (features.code "
            "in the spec); retrain the model with the spec's feature module"
        )


# `ml-release coverage` runs candidates whose feature step is ml_release's own mutant wrapper
# around the spec's module (named by this variable in the coverage run's environment only).
COVERAGE_MUTANT, COVERAGE_BASE_ENV = "ml_release.coverage.mutant", "ML_RELEASE_COVERAGE_BASE"


def _coverage_mutant_of(code: str, expected: str) -> bool:
    return code == COVERAGE_MUTANT and os.environ.get(COVERAGE_BASE_ENV) == expected
