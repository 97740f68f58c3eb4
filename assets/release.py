"""The release decision: promotion that re-reads every blocking verdict from the instance."""

from pathlib import Path

import dagster as dg

from assets.partitions import candidates
from ml_release import keys
from ml_release.faults import fault_point
from ml_release.jobs import production_materialization, recorded_verdicts
from ml_release.release import (
    release_candidate,
    release_lineage,
    rollback_target_after,
)
from ml_release.report import UNGATED
from ml_release.resource_types import Folder, RegistrySource, WarehouseSource
from ml_release.spec import ReleaseSpec
from ml_release.subjects import candidate_ref


def build_release_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The release_decision asset for `spec`."""
    gated = sorted({g.target for g in spec.gates})

    @dg.asset(
        key=spec.key(keys.RELEASE_DECISION),
        group_name=spec.named(keys.RELEASE_GROUP),
        deps=[spec.key(keys.CANDIDATE_MODEL), *[spec.key(t) for t in gated]],
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
    )
    def release_decision(
        context: dg.AssetExecutionContext,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        warehouse: dg.ResourceParam[WarehouseSource],
    ):
        """Promotion: only if every must_pass verdict for this digest passed against live prod."""
        registry = model_registry.get()
        store = Path(artifact_store.path)
        warehouse = warehouse.get(spec.model.name)
        candidate = candidate_ref(registry, store, spec.model.name, context.partition_key)
        lineage = release_lineage(spec, warehouse, context.run.run_id, candidate.version)
        verdicts = recorded_verdicts(context.instance, candidate.digest)
        # Its reads and the promotion's write share one open of the registry; the warehouse is
        # read before, so no step holds one file while it waits for the other.
        with registry.held():
            result = release_candidate(
                registry,
                spec,
                candidate,
                verdicts,
                lineage["data_version"],  # the data the verdicts must have judged
                lineage,
                canary_next=spec.canary.enabled,
            )
            promoted = result.decision == "promoted"
            target = rollback_target_after(registry, store, spec.model.name) if promoted else None
        if promoted:
            fault_point("production:before_report", seq=0)  # the ledger has it already
            key = spec.key(keys.PRODUCTION_MODEL)
            context.log_event(production_materialization(result.event, target, key=key))
        context.log.info(f"{candidate.version}: {result.decision}")
        return dg.MaterializeResult(
            metadata={
                "decision": result.decision,
                keys.CANDIDATE_VERSION: candidate.version,
                keys.CANDIDATE_DIGEST: candidate.digest,
                keys.BASELINE_DIGEST: result.baseline_digest or "n/a",
                "replaced": result.replaced,
                "ledger_seq": result.event.seq if result.event else -1,
                keys.SPEC_HASH: spec.spec_hash,
                "verdicts": dg.MetadataValue.json(result.verdicts),
                "lineage": dg.MetadataValue.json(lineage),
                **({"allow_ungated": UNGATED} if spec.allow_ungated else {}),
            },
            data_version=dg.DataVersion(candidate.digest),
        )

    return [release_decision]
