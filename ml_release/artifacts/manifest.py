"""Artifact manifests and verification: what an artifact is, and whether a folder is one.

Light on purpose (no scikit-learn, no skops): `ml-release rollback` verifies digests through
this module and must stay fast. A folder is an artifact when `manifest.json` validates and
its payload file (`model.skops` for a model, `config.json` for an LLM application's
prompt/config) is a regular file whose sha256 and size match it.
"""

import errno
import hashlib
import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml_release.errors import (
    EXIT_BAD_INPUT,
    IntegrityError,
    ReleaseError,
)
from ml_release.identifiers import IDENTIFIER_RULE, is_identifier

MODEL_FILE = "model.skops"
CONFIG_FILE = "config.json"
PAYLOAD_FILES = {"model": MODEL_FILE, "llm_config": CONFIG_FILE}
MANIFEST_FILE = "manifest.json"
TEMP_PREFIX = ".tmp-"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class ArtifactInputError(ReleaseError):
    """An artifact cannot be written: bad name or version, unfitted or unsupported model."""

    exit_code = EXIT_BAD_INPUT


class UnsafePathError(ReleaseError):
    """A path would leave the folder it must stay in (`..`, absolute path, symlink)."""

    exit_code = EXIT_BAD_INPUT


class UnsafeArtifactError(IntegrityError):
    """A model file is not skops, or names types ml-release does not load."""

    def __init__(self, message: str, refused: list[str] | None = None) -> None:
        super().__init__(message)
        self.refused = list(refused or [])


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureColumn(_Frozen):
    """A raw input column the model expects."""

    name: str = Field(min_length=1)
    dtype: str = Field(min_length=1, description="Kind from REQUIRED_COLUMNS, e.g. 'numeric'.")


class LibraryVersions(_Frozen):
    """Versions of the libraries that wrote the artifact."""

    python: str
    scikit_learn: str
    skops: str
    numpy: str


class OutputSchema(_Frozen):
    """What the model returns: class probabilities (a classifier), or one prediction."""

    classes: list[bool | int | float | str] = Field(
        default_factory=list, description="A classifier's classes, in `predict_proba` order."
    )
    probability_columns: list[str] = Field(
        default_factory=list, description="The served output per class (`proba_<class>`)."
    )
    prediction_column: str | None = Field(
        None, description="A regressor's served output (`prediction`); None for a classifier."
    )

    @property
    def kind(self) -> str:
        """`regression` for a regressor's prediction, else `classification`."""
        return "regression" if self.prediction_column else "classification"


class Manifest(_Frozen):
    """What an artifact is, where it came from, and what loading it requires."""

    name: str
    version: str
    kind: Literal["model", "llm_config"] = Field(
        "model", description="`model` (model.skops) or `llm_config` (an LLM prompt/config)."
    )
    sha256: str = Field(pattern=SHA256_PATTERN.pattern)
    size_bytes: int = Field(ge=0)
    created_at: str = Field(description="ISO 8601, UTC.")
    # Required for a model; an LLM prompt/config has no libraries, features or outputs.
    library_versions: LibraryVersions | None = None
    features: list[FeatureColumn] = Field(default_factory=list)
    output_schema: OutputSchema | None = None
    training_data_fingerprint: str | None = None
    code_version: str | None = Field(None, description="Git commit of the training code.")
    feature_code_version: str | None = None
    spec_hash: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    trusted_types: list[str] | None = Field(
        None, description="Non-default skops types loading must trust (models only)."
    )
    spec_trusted_types: list[str] = Field(
        default_factory=list,
        description="Types allowed only because the release spec lists them under "
        "`trusted_types:` (reviewed by the spec's owner); loading needs the same listing.",
    )
    estimator: str | None = Field(None, description="The model's class, e.g. `Pipeline`.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(_name_problem(value))
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _is_version(value):
            raise ValueError(_version_problem(value))
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: str) -> str:
        offset = datetime.fromisoformat(value).utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError(f"created_at {value!r} must be an ISO time in UTC")
        return value

    @model_validator(mode="after")
    def _model_fields(self) -> "Manifest":
        if self.kind == "model":
            missing = [
                name
                for name in ("library_versions", "output_schema", "trusted_types")
                if getattr(self, name) is None
            ] + ([] if self.features else ["features"])
            if missing:
                raise ValueError(f"a model manifest needs {', '.join(missing)}")
        return self

    @property
    def payload_file(self) -> str:
        """The file whose sha256 the manifest records: `model.skops` or `config.json`."""
        return PAYLOAD_FILES[self.kind]


def _name_problem(name: object) -> str:
    return f"model name {name!r} is not valid: use {IDENTIFIER_RULE} characters"


def _is_version(version: object) -> bool:
    return isinstance(version, str) and bool(VERSION_PATTERN.match(version)) and ".." not in version


def _version_problem(version: object) -> str:
    return (
        f"model version {version!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, without '..' or slashes"
    )


def check_name(name: str) -> str:
    """Return `name`, or raise ArtifactInputError if it is not a safe model name."""
    if not is_identifier(name):
        raise ArtifactInputError(_name_problem(name))
    return name


def check_version(version: str) -> str:
    """Return `version`, or raise ArtifactInputError if it could escape its folder."""
    if not _is_version(version):
        raise ArtifactInputError(_version_problem(version))
    return version


def safe_path(root: Path, *parts: str) -> Path:
    """`root` joined with `parts`, resolved; UnsafePathError if the result leaves `root`."""
    base = Path(root).resolve()
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and base not in candidate.parents:
        raise UnsafePathError(
            f"path {'/'.join(map(str, parts))!r} resolves to {candidate}, outside {base} "
            "('..', an absolute path or a symlink out of the store); use a path inside it"
        )
    return candidate


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open_regular(path: Path) -> BinaryIO:
    # O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a FIFO cannot hang the reader.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(
                f"{path} is a symlink; artifact files must be regular files in the folder"
            ) from None
        raise
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise IntegrityError(f"{path} is not a regular file")
    return handle


def read_manifest(folder: Path) -> Manifest:
    """The manifest of an artifact folder; IntegrityError if missing, a symlink or invalid."""
    path = Path(folder) / MANIFEST_FILE
    try:
        with _open_regular(path) as handle:
            return Manifest.model_validate_json(handle.read())
    except FileNotFoundError:
        raise IntegrityError(
            f"{folder} has no {MANIFEST_FILE}: not an artifact, or its write did not finish. "
            "Publish it again with publish_candidate."
        ) from None
    except ValidationError as exc:
        raise IntegrityError(f"{path} is not a valid manifest: {exc}") from None


def verified_bytes(
    folder: Path, keep: bool, expected_digest: str | None = None
) -> tuple[Manifest, bytes]:
    """The manifest and (when `keep`) the payload bytes, after checking them against it.

    With `expected_digest` (the registry's), the payload must also have that digest: a folder
    swapped for another artifact, manifest and all, is refused rather than trusted.
    """
    manifest = read_manifest(folder)
    payload = manifest.payload_file
    digest, size, blocks = hashlib.sha256(), 0, []
    try:
        with _open_regular(Path(folder) / payload) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
                if keep:
                    blocks.append(block)
    except FileNotFoundError:
        raise IntegrityError(f"{folder} has no {payload}; publish the artifact again") from None
    if digest.hexdigest() != manifest.sha256 or size != manifest.size_bytes:
        raise IntegrityError(
            f"{folder}/{payload} does not match its manifest: expected sha256 "
            f"{manifest.sha256} ({manifest.size_bytes} bytes), found {digest.hexdigest()} "
            f"({size} bytes). The file is corrupt or was replaced; do not use it, publish it "
            "again."
        )
    if expected_digest is not None and digest.hexdigest() != expected_digest:
        raise IntegrityError(
            f"{folder}/{payload} has sha256 {digest.hexdigest()[:12]}, but the registry holds "
            f"{expected_digest[:12]} for {manifest.name} {manifest.version}: the folder was "
            "replaced after registration. Do not use it; restore the artifact from a backup "
            "or publish a new version."
        )
    return manifest, b"".join(blocks)


def verify_artifact(folder: Path, expected_digest: str | None = None) -> Manifest:
    """Check an artifact folder's model file against its manifest; returns the manifest.

    Args:
        folder: The artifact folder.
        expected_digest: The digest the registry holds; the payload must have it too.

    Raises:
        IntegrityError: Manifest or model file missing, a symlink, or a digest differs.
    """
    return verified_bytes(folder, keep=False, expected_digest=expected_digest)[0]
