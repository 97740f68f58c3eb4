"""serving_report: the candidate and production served side by side in the serving runtime."""

from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.evaluation.report import image_markdown
from ml_release.feature_code import load_feature_code
from ml_release.gates.store import store_results
from ml_release.home import temp_dir
from ml_release.jobs import latest_candidate
from ml_release.registry import PRODUCTION
from ml_release.serving.gates import judge, serving_gates
from ml_release.serving.report import batch_table, latency_plot, latency_table
from ml_release.serving.run import request_rows, run_serving_checks
from ml_release.spec import ReleaseSpec


def candidate_and_production(context, spec: ReleaseSpec):
    """(version, artifact folder) of this run's candidate and of production (or None)."""
    version, _digest = latest_candidate(context.instance)
    registry = context.resources.model_registry.get()
    name = spec.model.name
    candidate = (version, Path(registry.version(name, version).path))
    live = registry.alias(name, PRODUCTION)
    return candidate, (live, Path(registry.version(name, live).path)) if live else None


def build_serving_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """serving_report, when the spec has serving gates."""
    gates = serving_gates(spec)
    if not gates:
        return []

    @dg.asset(
        name=keys.SERVING_REPORT,
        deps=[keys.CANDIDATE_MODEL, keys.EVALUATION_HOLDOUT],
        group_name=keys.EVALUATION_GROUP,
        required_resource_keys={"warehouse", "model_registry", "artifact_store", "serving_runtime"},
        kinds={"mlserver", "scikit-learn"},
    )
    def serving_report(context: dg.AssetExecutionContext):
        """Load time, memory, latency, batches, agreement, schema, compatibility vs production."""
        candidate, production = candidate_and_production(context, spec)
        contract = load_feature_code(spec.features.code).required_columns
        warehouse = context.resources.warehouse.get()
        rows = request_rows(warehouse, spec, contract)
        workdir = temp_dir() / f"serving-{context.run.run_id}"
        report = run_serving_checks(
            candidate,
            production,
            Path(context.resources.artifact_store.path),
            rows,
            contract,
            spec.serving,
            context.resources.serving_runtime.options(spec, workdir / "app", context.log.info),
            workdir,
            spec.model.name,
            progress=context.log.info,
        )
        results = [judge(gate, report, spec) for gate in gates]
        store_results(warehouse, context.run.run_id, results)
        table = latency_table(report)
        return dg.MaterializeResult(
            metadata={
                "production": production[0] if production else "none",
                "gates": dg.MetadataValue.md(
                    "\n".join(f"- **{r.gate}**: {r.verdict.value} - {r.summary}" for r in results)
                ),
                "latency": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".2f")),
                "batches": dg.MetadataValue.md(
                    batch_table(report).to_markdown(index=False, floatfmt=".1f")
                ),
                "latency_distribution": dg.MetadataValue.md(
                    image_markdown(latency_plot(report), "latency distribution")
                ),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [serving_report]
