"""Model assets: the candidate a release run gates."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_release import keys
from ml_release.candidates import import_candidate, train_and_store
from ml_release.spec import ReleaseSpec


class CandidateConfig(dg.Config):
    """Which candidate to gate."""

    artifact: str = Field(
        "", description="Artifact folder to gate (set by the sensor); empty: train from the spec."
    )


def build_model_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The candidate_model asset for `spec`."""

    @dg.asset(
        name=keys.CANDIDATE_MODEL,
        group_name=keys.MODELS_GROUP,
        deps=[keys.TRAINING_SNAPSHOT, keys.TRAINING_FEATURES],
        required_resource_keys={"warehouse", "model_registry", "artifact_store"},
        pool=keys.WAREHOUSE_POOL,
        kinds={"scikit-learn", "skops"},
    )
    def candidate_model(context: dg.AssetExecutionContext, config: CandidateConfig):
        """The candidate model: trained from the spec or imported; identified by its digest."""
        registry = context.resources.model_registry.get()
        root = Path(context.resources.artifact_store.path)
        if config.artifact:
            candidate = import_candidate(Path(config.artifact), root, registry)
        else:
            candidate = train_and_store(context.resources.warehouse.get(), spec, root, registry)
        manifest = candidate.manifest
        context.log.info(f"candidate {candidate.version} ({candidate.digest[:12]})")
        return dg.MaterializeResult(
            metadata={
                keys.CANDIDATE_VERSION: candidate.version,
                keys.CANDIDATE_DIGEST: candidate.digest,
                "source": "artifact" if config.artifact else f"trained {spec.model.estimator}",
                "newly_registered": candidate.newly_registered,
                "artifact": dg.MetadataValue.path(str(candidate.folder)),
                "manifest": dg.MetadataValue.json(manifest.model_dump(mode="json")),
                **candidate.metrics,
            },
            data_version=dg.DataVersion(candidate.digest),
        )

    return [candidate_model]
