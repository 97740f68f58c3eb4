"""The candidate a release gates, prepared before its run: one run, one digest.

A release run gates exactly one candidate, known by its artifact digest before the run starts
(the run's Dagster partition). `prepare_candidate` gets it there: it trains one from the spec,
or admits an artifact folder (refused at the door when unsafe, see `ml_release.intake`), or,
for an LLM spec, writes a prompt/config file as an artifact; then places it in the store and
registers it. Nothing inside the run ever asks which candidate is newest.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ml_release import keys
from ml_release.artifacts import Manifest, read_manifest
from ml_release.artifacts.writer import write_artifact
from ml_release.errors import IntegrityError
from ml_release.home import release_home
from ml_release.intake import admit
from ml_release.registry import Registry
from ml_release.sources import fingerprint
from ml_release.spec import ReleaseSpec
from ml_release.store import import_artifact, version_of
from ml_release.subjects import verified_ref


@dataclass(frozen=True)
class Candidate:
    """A registered candidate in the store."""

    manifest: Manifest
    folder: Path
    version: str
    newly_registered: bool
    source: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of the payload: the candidate's identity and its run's partition key."""
        return self.manifest.sha256


def train_and_store(spec: ReleaseSpec, store_root: Path, registry: Registry) -> Candidate:
    """Train the spec's pipeline, write its artifact into the store, register it."""
    from ml_release.feature_code import load_feature_code
    from ml_release.training import train_candidate

    pipeline, metrics = train_candidate(spec)
    code = load_feature_code(spec.features.code)
    written = write_artifact(
        pipeline,
        store_root / ".staging",
        name=spec.model.name,
        features=[{"name": c, "dtype": k} for c, k in code.required_columns.items()],
        training_data_fingerprint=fingerprint(spec.source_for(keys.TRAINING_SNAPSHOT)),
        spec_hash=spec.spec_hash,
        feature_code_version=code.version,
        task=spec.model.task,
        trusted_types=spec.trusted_types,
    )
    registered, created, folder = import_artifact(written, store_root, registry, move=True)
    return Candidate(
        read_manifest(folder),
        folder,
        registered.version,
        created,
        f"trained {spec.model.estimator}",
        metrics,
    )


def import_candidate(
    source: Path,
    spec: ReleaseSpec,
    store_root: Path,
    registry: Registry,
    quarantine_root: Path,
    *,
    way_in: str,
    move: bool = False,
) -> Candidate:
    """Admit an artifact folder (refused at the door when unsafe), store it, register it."""
    admit(
        source,
        spec.model.name,
        registry,
        quarantine_root,
        source=way_in,
        copy=not move,
        trusted=spec.trusted_types,
    )
    registered, created, folder = import_artifact(source, store_root, registry, move=move)
    return Candidate(read_manifest(folder), folder, registered.version, created, "artifact")


def prepare_candidate(
    spec: ReleaseSpec,
    source: Path | None,
    store_root: Path,
    registry: Registry,
    quarantine_root: Path,
) -> Candidate:
    """The candidate of `ml-release run`: `source` (folder, or prompt/config file) or trained."""
    if spec.model.task == "llm":
        from ml_release.llm.candidate import gate_candidate

        llm = spec.llm
        assert llm is not None  # the spec validator requires it for task llm
        path = source or llm.path(llm.candidate, spec.source.parent, release_home())
        return gate_candidate(path, spec, store_root, registry, quarantine_root)
    if source is None:
        return train_and_store(spec, store_root, registry)
    return import_candidate(
        source, spec, store_root, registry, quarantine_root, way_in="run --candidate"
    )


def candidate_of_partition(
    spec: ReleaseSpec,
    digest: str,
    registry: Registry,
    store_root: Path,
    inbox: tuple[Path, Path],
    artifact: str = "",
) -> Candidate:
    """The candidate a release run gates: the registered version with the run's `digest`.

    A run the sensor launched names the artifact in `incoming/` (`artifact`): it is admitted
    again (the folder may have changed since the tick looked), moved into the store and
    registered here, in the run. `inbox` is (incoming, quarantine).

    Raises:
        NotFoundError: `digest` is not registered and no artifact was given.
        IntegrityError: The artifact given does not have the run's digest, or is unsafe.
    """
    registered = registry.by_digest(spec.model.name, digest)
    if registered is None and artifact:
        incoming, quarantine_root = inbox
        path = Path(artifact).resolve()
        from_inbox = incoming.resolve() in path.parents
        candidate = import_candidate(
            path,
            spec,
            store_root,
            registry,
            quarantine_root,
            way_in="sensor" if from_inbox else "run config",
            move=from_inbox,
        )
        if candidate.digest != digest:
            raise IntegrityError(
                f"{artifact} holds digest {candidate.digest[:12]}, but this run gates "
                f"{digest[:12]}: launch the run for the artifact's own partition"
            )
        return candidate
    ref = verified_ref(store_root, registered or version_of(registry, spec.model.name, digest))
    return Candidate(read_manifest(ref.folder), ref.folder, ref.version, False, "registered")
