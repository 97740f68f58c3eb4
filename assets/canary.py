"""canary_rollout: traffic moved to the candidate in steps; promotion at 100 % or an abort."""

from pathlib import Path

import dagster as dg

from assets.partitions import candidates
from ml_release import keys
from ml_release.canary.release import CANARY_CHECK, CanaryRelease, canary_release
from ml_release.faults import fault_point
from ml_release.feature_code import load_feature_code
from ml_release.home import temp_dir
from ml_release.jobs import production_materialization, recorded_verdicts
from ml_release.release import release_lineage, rollback_target_after
from ml_release.resource_types import (
    Folder,
    RegistrySource,
    ServingRuntime,
    TrafficSplits,
    WarehouseSource,
)
from ml_release.shadow.replay import load_window
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef, candidate_ref


def build_canary_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """canary_rollout, when the spec enables canaries."""
    if not spec.canary.enabled:
        return []

    @dg.asset(
        key=spec.key(keys.CANARY_ROLLOUT),
        deps=[spec.key(keys.RELEASE_DECISION)],
        group_name=spec.named(keys.RELEASE_GROUP),
        partitions_def=candidates(spec),
        check_specs=[
            dg.AssetCheckSpec(
                CANARY_CHECK,
                asset=spec.key(keys.CANARY_ROLLOUT),
                blocking=True,
                description="Every canary step's anytime-valid analysis; fails on an abort.",
            )
        ],
        kinds={"mlserver"},
    )
    def canary_rollout(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        serving_runtime: dg.ResourceParam[ServingRuntime],
        traffic_split: dg.ResourceParam[TrafficSplits],
    ):
        """Steps of traffic to the candidate, analysed at each; promotes after the last one."""
        registry = model_registry.get()
        store = Path(artifact_store.path)
        warehouse = warehouse.get(spec.model.name)
        candidate = candidate_ref(registry, store, spec.model.name, context.partition_key)
        contract = load_feature_code(spec.features.code).required_columns
        settings = spec.canary
        workdir = temp_dir() / f"canary-{context.run.run_id}"
        lineage = release_lineage(spec, warehouse, context.run.run_id, candidate.version)
        canary = canary_release(
            spec,
            registry,
            store,
            candidate,
            lambda: recorded_verdicts(context.instance, candidate.digest),
            lineage["data_version"],  # the data the verdicts must have judged
            load_window(
                warehouse, spec, contract, count=settings.requests_per_step * len(settings.steps)
            ),
            contract,
            serving_runtime.options(spec, workdir / "app", context.log.info),
            workdir,
            traffic_split.state_file(spec.model.name),
            lineage,
            progress=context.log.info,
            open_split=traffic_split.open,
        )
        promotion = canary.promotion
        if promotion is not None and promotion.event is not None:
            target = rollback_target_after(registry, store, spec.model.name)
            fault_point("production:before_report", seq=0)  # the ledger has it already
            key = spec.key(keys.PRODUCTION_MODEL)
            context.log_event(production_materialization(promotion.event, target, key=key))
        return _canary_result(spec, candidate, canary)

    return [canary_rollout]


def _canary_result(
    spec: ReleaseSpec, candidate: ModelRef, canary: CanaryRelease
) -> dg.MaterializeResult:
    """The asset's metadata and its blocking check: the steps, the evidence, the reason."""
    steps = canary.steps
    table = steps.to_markdown(index=False, floatfmt=".4g") if len(steps) else "_no look_"
    evidence = canary.evidence
    return dg.MaterializeResult(
        metadata={
            "decision": "canary passed" if canary.passed else "canary aborted",
            keys.CANDIDATE_VERSION: candidate.version,
            keys.CANDIDATE_DIGEST: candidate.digest,
            "baseline": canary.production.version,
            keys.BASELINE_DIGEST: canary.production.digest,
            "reason": canary.result.reason,
            "steps": dg.MetadataValue.md(table),
            keys.SPEC_HASH: spec.spec_hash,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CANARY_CHECK,
                passed=canary.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=canary.result.reason,
                metadata={
                    **evidence.evidence(),
                    keys.CANDIDATE_VERSION: candidate.version,
                    keys.CANDIDATE_DIGEST: candidate.digest,
                    "summary": dg.MetadataValue.md(evidence.markdown()),
                    "failed_step": canary.result.failed_step or -1,
                    "steps": dg.MetadataValue.md(table),
                },
            )
        ],
    )
