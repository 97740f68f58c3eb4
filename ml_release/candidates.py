"""Getting the candidate a release run gates: trained from the spec, or an existing artifact.

Either way the candidate ends up verified in the artifact store and registered, and is
identified from then on by its digest.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ml_release import keys
from ml_release.artifacts import Manifest
from ml_release.artifacts.writer import write_artifact
from ml_release.feature_code import load_feature_code
from ml_release.registry import Registry
from ml_release.sources import fingerprint
from ml_release.spec import ReleaseSpec
from ml_release.store import register_stored, store_artifact
from ml_release.training import train_candidate
from ml_release.warehouse import Warehouse


@dataclass(frozen=True)
class Candidate:
    """A registered candidate in the store."""

    manifest: Manifest
    folder: Path
    version: str
    newly_registered: bool
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of the model file: the candidate's identity."""
        return self.manifest.sha256


def train_and_store(
    warehouse: Warehouse, spec: ReleaseSpec, store_root: Path, registry: Registry
) -> Candidate:
    """Train the spec's pipeline, write its artifact into the store, register it."""
    pipeline, metrics = train_candidate(warehouse, spec)
    code = load_feature_code(spec.features.code)
    staging = store_root / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    written = write_artifact(
        pipeline,
        staging,
        name=spec.model.name,
        features=[{"name": c, "dtype": k} for c, k in code.required_columns.items()],
        training_data_fingerprint=fingerprint(spec.source_for(keys.TRAINING_SNAPSHOT)),
        spec_hash=spec.spec_hash,
        feature_code_version=code.version,
        task=spec.model.task,
        trusted_types=spec.trusted_types,
    )
    manifest, folder = store_artifact(written, store_root, move=True)
    registered, created = register_stored(registry, manifest, folder)
    return Candidate(manifest, folder, registered.version, created, metrics)


def import_candidate(source: Path, store_root: Path, registry: Registry) -> Candidate:
    """Verify an artifact folder, copy it into the store, register it."""
    manifest, folder = store_artifact(source, store_root, move=False)
    registered, created = register_stored(registry, manifest, folder)
    return Candidate(manifest, folder, registered.version, created)
