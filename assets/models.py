"""Model assets: the candidate a release run gates, and what is in production."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.partitions import candidates
from ml_release import keys
from ml_release.candidates import candidate_of_partition
from ml_release.resource_types import ArtifactInbox, Folder, RegistrySource
from ml_release.spec import ReleaseSpec


class CandidateConfig(dg.Config):
    """Which artifact the run's candidate comes from, when it is not registered yet."""

    artifact: str = Field(
        "",
        description="Artifact folder holding the run's candidate (set by the sensor); empty: "
        "the registered version whose digest is the run's partition.",
    )


def build_model_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The candidate_model asset for `spec`."""

    @dg.asset(
        key=spec.key(keys.CANDIDATE_MODEL),
        group_name=spec.named(keys.MODELS_GROUP),
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"scikit-learn", "skops"},
    )
    def candidate_model(
        context: dg.AssetExecutionContext,
        config: CandidateConfig,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        artifact_inbox: dg.ResourceParam[ArtifactInbox],
    ):
        """The run's candidate (partition = its digest), verified against the registry."""
        candidate = candidate_of_partition(
            spec,
            context.partition_key,
            model_registry.get(),
            Path(artifact_store.path),
            artifact_inbox.folders(),
            config.artifact,
        )
        manifest = candidate.manifest
        context.log.info(f"candidate {candidate.version} ({candidate.digest[:12]})")
        return dg.MaterializeResult(
            metadata={
                keys.CANDIDATE_VERSION: candidate.version,
                keys.CANDIDATE_DIGEST: candidate.digest,
                "source": candidate.source,
                "newly_registered": candidate.newly_registered,
                "training_data_fingerprint": manifest.training_data_fingerprint or "unknown",
                "artifact": dg.MetadataValue.path(str(candidate.folder)),
                "manifest": dg.MetadataValue.json(manifest.model_dump(mode="json")),
            },
            data_version=dg.DataVersion(candidate.digest),
        )

    return [candidate_model]


def production_model_spec(spec: ReleaseSpec) -> dg.AssetSpec:
    """`production_model`: materialized by every promotion, override and rollback."""
    last = [keys.RELEASE_DECISION] + ([keys.CANARY_ROLLOUT] if spec.canary.enabled else [])
    deps = [spec.key(name) for name in last]
    return dg.AssetSpec(
        spec.key(keys.PRODUCTION_MODEL),
        deps=deps,
        group_name=spec.named(keys.RELEASE_GROUP),
        description="What is in production: each promotion, override and rollback, with the "
        "version, digest, what it replaced, why, its ledger entry and the rollback target.",
        kinds={"skops"},
    )
