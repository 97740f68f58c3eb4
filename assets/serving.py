"""serving_report: the candidate and production served side by side in the serving runtime."""

from pathlib import Path

import dagster as dg

from assets.partitions import candidates
from ml_release import keys
from ml_release.evaluation.report import write_image
from ml_release.feature_code import load_feature_code
from ml_release.gates.store import store_results
from ml_release.home import temp_dir
from ml_release.resource_types import Folder, RegistrySource, ServingRuntime, WarehouseSource
from ml_release.serving.gates import judge, serving_gates
from ml_release.serving.report import batch_table, latency_plot, latency_table
from ml_release.serving.run import request_rows, run_serving_checks
from ml_release.sources import data_version
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef, candidate_ref, production_ref


def candidate_and_production(
    spec: ReleaseSpec, partition: str, model_registry: RegistrySource, artifact_store: Folder
) -> tuple[ModelRef, ModelRef | None]:
    """This run's candidate (its partition's digest) and production now, both verified."""
    registry = model_registry.get()
    store = Path(artifact_store.path)
    candidate = candidate_ref(registry, store, spec.model.name, partition)
    return candidate, production_ref(registry, store, spec.model.name)


def stamp(results, production: ModelRef | None, warehouse, spec: ReleaseSpec) -> None:
    """Mark every result with the production model it compared against and the data."""
    version = data_version(warehouse, load_feature_code(spec.features.code).version)
    for result in results:
        result.baseline_digest = production.digest if production else "none"
        result.data_version = version


def build_serving_assets(spec: ReleaseSpec, chained: bool = True) -> list[dg.AssetsDefinition]:
    """serving_report, when the spec has serving gates.

    `chained`: it waits for the evaluation, so a candidate a blocking gate already stopped (the
    data contract, parity, model quality) starts no server: Dagster skips what is downstream
    of a failed blocking check. The coverage runner builds it unchained, to see every gate a
    mode targets (docs/decisions.md).
    """
    gates = serving_gates(spec)
    if not gates:
        return []
    waits_for = [spec.key(keys.EVALUATION_REPORT)] if chained else []

    @dg.asset(
        key=spec.key(keys.SERVING_REPORT),
        deps=[spec.key(keys.CANDIDATE_MODEL), spec.key(keys.EVALUATION_HOLDOUT), *waits_for],
        group_name=spec.named(keys.EVALUATION_GROUP),
        partitions_def=candidates(spec),
        kinds={"mlserver", "scikit-learn"},
    )
    def serving_report(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        serving_runtime: dg.ResourceParam[ServingRuntime],
        report_store: dg.ResourceParam[Folder],
    ):
        """Load time, memory, latency, batches, agreement, schema, compatibility vs production."""
        candidate, production = candidate_and_production(
            spec, context.partition_key, model_registry, artifact_store
        )
        contract = load_feature_code(spec.features.code).required_columns
        warehouse = warehouse.get(spec.model.name)
        rows = request_rows(warehouse, spec, contract)
        workdir = temp_dir() / f"serving-{context.run.run_id}"
        report = run_serving_checks(
            candidate,
            production,
            Path(artifact_store.path),
            rows,
            contract,
            spec.serving,
            serving_runtime.options(spec, workdir / "app", context.log.info),
            workdir,
            spec.model.name,
            progress=context.log.info,
        )
        results = [judge(gate, report, spec) for gate in gates]
        stamp(results, production, warehouse, spec)
        store_results(warehouse, context.run.run_id, [g.id for g in gates], results)
        table = latency_table(report)
        return dg.MaterializeResult(
            metadata={
                "production": production.version if production else "none",
                keys.BASELINE_DIGEST: production.digest if production else "none",
                "gates": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{g.id}**: {r.verdict.value} - {r.summary}"
                        for g, r in zip(gates, results, strict=True)
                    )
                ),
                "latency": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".2f")),
                "batches": dg.MetadataValue.md(
                    batch_table(report).to_markdown(index=False, floatfmt=".1f")
                ),
                "latency_distribution": dg.MetadataValue.path(
                    str(
                        write_image(
                            Path(report_store.path) / context.run.run_id,
                            "latency_distribution",
                            latency_plot(report),
                        )
                    )
                ),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [serving_report]
