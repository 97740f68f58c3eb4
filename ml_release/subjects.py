"""What a release run judges: its candidate (by the run's digest) and production, verified.

A run's candidate is its Dagster partition key, the artifact digest, carried by the run from
its launch (`candidate_of_run`); nothing asks the instance which candidate is newest. Both the
candidate and production are resolved through the registry and verified against the digest it
holds before anything scores or serves them.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ml_release import keys
from ml_release.artifacts.manifest import SHA256_PATTERN
from ml_release.errors import EXIT_BAD_INPUT, ReleaseError
from ml_release.registry import PRODUCTION, RegistryReads, Version
from ml_release.store import registered_folder, verify_registered, version_of


class RunIdentityError(ReleaseError):
    """A release run was launched without the one candidate digest it gates."""

    exit_code = EXIT_BAD_INPUT


class ModelRef(NamedTuple):
    """A registered model version, verified: its label, artifact folder and digest."""

    version: str
    folder: Path
    digest: str


def candidate_of_run(tags: Mapping[str, str]) -> str:
    """The candidate digest a run gates: its partition key."""
    digest = tags.get(keys.PARTITION_TAG, "")
    if not SHA256_PATTERN.match(digest):
        raise RunIdentityError(
            f"this run has no candidate partition (partition {digest or 'none'!r}): a release "
            "run gates exactly one candidate digest. Launch it for one partition: "
            "`ml-release run`, the artifact sensor, or Materialize with a partition in the UI."
        )
    return digest


def verified_ref(store_root: Path, registered: Version) -> ModelRef:
    """A registered version's artifact, verified against the digest the registry holds."""
    verify_registered(store_root, registered)
    return ModelRef(
        registered.version, registered_folder(store_root, registered), registered.digest
    )


def model_ref(registry: RegistryReads, store_root: Path, model: str, version: str) -> ModelRef:
    """`version` of `model`, its artifact verified against the registry's digest."""
    return verified_ref(store_root, registry.version(model, version))


def candidate_ref(registry: RegistryReads, store_root: Path, model: str, digest: str) -> ModelRef:
    """The registered version with `digest`, verified."""
    return verified_ref(store_root, version_of(registry, model, digest))


def production_ref(registry: RegistryReads, store_root: Path, model: str) -> ModelRef | None:
    """What is in production now, verified; None before the first release."""
    live = registry.alias(model, PRODUCTION)
    return None if live is None else model_ref(registry, store_root, model, live)
