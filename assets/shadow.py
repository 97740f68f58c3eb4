"""shadow_report: logged production requests replayed to the candidate and to production."""

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.partitions import candidates
from assets.serving import candidate_and_production, stamp
from ml_release import keys
from ml_release.feature_code import load_feature_code
from ml_release.gates.store import store_results
from ml_release.home import temp_dir
from ml_release.resource_types import Folder, RegistrySource, ServingRuntime, WarehouseSource
from ml_release.serving.gates import serving_gates
from ml_release.shadow.gates import (
    judge,
    labelled_quality,
    latency_rows,
    score_shift,
    segment_table,
    shadow_gates,
)
from ml_release.shadow.replay import load_window
from ml_release.shadow.run import run_shadow
from ml_release.spec import ReleaseSpec


def _markdown(rows: list[dict]) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    return dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


def build_shadow_assets(spec: ReleaseSpec, chained: bool = True) -> list[dg.AssetsDefinition]:
    """shadow_report, when the spec has shadow gates.

    `chained`: it waits for the stage before it (the serving checks, else the evaluation), so a
    candidate they blocked is not replayed, and two latency measurements never share the cores.
    """
    gates = shadow_gates(spec)
    if not gates:
        return []
    before = keys.SERVING_REPORT if serving_gates(spec) else keys.EVALUATION_REPORT
    waits_for = [spec.key(before)] if chained else []

    @dg.asset(
        key=spec.key(keys.SHADOW_REPORT),
        deps=[spec.key(keys.CANDIDATE_MODEL), spec.key(keys.SERVING_LOG), *waits_for],
        group_name=spec.named(keys.EVALUATION_GROUP),
        partitions_def=candidates(spec),
        kinds={"mlserver", "scikit-learn"},
    )
    def shadow_report(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        serving_runtime: dg.ResourceParam[ServingRuntime],
    ):
        """Agreement, flips per segment, score shift, errors and latency on replayed traffic."""
        candidate, production = candidate_and_production(
            spec, context.partition_key, model_registry, artifact_store
        )
        contract = load_feature_code(spec.features.code).required_columns
        warehouse = warehouse.get(spec.model.name)
        requests = load_window(warehouse, spec, contract)
        context.log.info(f"replaying {len(requests):,} logged requests")
        workdir = temp_dir() / f"shadow-{context.run.run_id}"
        report = run_shadow(
            candidate,
            production,
            Path(artifact_store.path),
            requests,
            contract,
            spec,
            serving_runtime.options(spec, workdir / "app", context.log.info),
            workdir,
            progress=context.log.info,
        )
        results = [judge(gate, report, spec) for gate in gates]
        stamp(results, production, warehouse, spec)
        store_results(warehouse, context.run.run_id, [g.id for g in gates], results)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(requests),
                "production": production.version if production else "none",
                keys.BASELINE_DIGEST: production.digest if production else "none",
                "gates": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{g.id}**: {r.verdict.value} - {r.summary}"
                        for g, r in zip(gates, results, strict=True)
                    )
                ),
                "latency": _markdown(latency_rows(report)),
                "flips_by_segment": _markdown(segment_table(report)),
                "score_shift": dg.MetadataValue.json(score_shift(report)),
                "labelled_quality": _markdown(labelled_quality(report)),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [shadow_report]
