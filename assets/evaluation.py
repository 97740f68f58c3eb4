"""Evaluation assets: both models score the same rows; the report compares them, paired.

One builder serves every tabular task: `ml_release.evaluation.tasks` says how the task's rows
are read, scored and judged. Every asset here is partitioned by candidate digest: a run scores
and judges its own candidate, into tables keyed by that digest.
"""

from pathlib import Path

import dagster as dg

from assets.partitions import candidates
from ml_release import keys
from ml_release.evaluation.report import html_report, worst_segments_markdown, write_image
from ml_release.evaluation.run import model_gates
from ml_release.evaluation.steps import judge_candidate, score_models
from ml_release.evaluation.tasks import EvaluationTask, evaluation_task
from ml_release.gates.store import store_results
from ml_release.resource_types import Folder, RegistrySource, WarehouseSource
from ml_release.spec import ReleaseSpec
from ml_release.subjects import candidate_ref, production_ref


def _metadata(scored) -> dict:
    return {
        "dagster/row_count": scored.rows,
        "table": scored.table,
        **{f"rows.{name}": count for name, count in scored.per_set.items()},
    }


def build_evaluation_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """candidate_predictions, baseline_predictions and evaluation_report for `spec`'s task."""
    task = evaluation_task(spec)
    return [*build_prediction_assets(spec, task), build_report_asset(spec, task)]


def build_prediction_assets(spec: ReleaseSpec, task: EvaluationTask) -> list[dg.AssetsDefinition]:
    """candidate_predictions and baseline_predictions in one step: the rows are read once.

    Two assets (each model's table, with its own lineage and metadata) computed together, the
    way Dagster shares work between assets; either can be materialized alone.
    """
    deps = [spec.key(keys.CANDIDATE_MODEL), *[spec.key(t) for t in task.inputs]]
    common = {"deps": deps, "group_name": keys.EVALUATION_GROUP, "skippable": True}
    kinds = {"duckdb", "scikit-learn"}

    @dg.multi_asset(
        name=spec.named("model_predictions"),
        specs=[
            dg.AssetSpec(spec.key(name), description=description, kinds=kinds, **common)
            for name, description in (
                (keys.CANDIDATE_PREDICTIONS, task.candidate_description),
                (keys.BASELINE_PREDICTIONS, task.baseline_description),
            )
        ],
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
        can_subset=True,
    )
    def model_predictions(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
    ):
        store = Path(artifact_store.path)
        with model_registry.get().held() as registry:  # three reads, one open of the file
            candidate = candidate_ref(registry, store, spec.model.name, context.partition_key)
            production = production_ref(registry, store, spec.model.name)
        wanted = [key.path[-1] for key in context.selected_asset_keys]
        with warehouse.get(spec.model.name).held() as client:
            scored = score_models(task, client, spec, candidate, production, wanted)
        if scored.candidate is not None:
            if scored.candidate.invalid:
                context.log.warning(f"{scored.candidate.invalid} scores are {task.invalid_means}")
            yield dg.MaterializeResult(
                asset_key=spec.key(keys.CANDIDATE_PREDICTIONS),
                metadata={
                    **_metadata(scored.candidate),
                    keys.CANDIDATE_VERSION: candidate.version,
                    keys.CANDIDATE_DIGEST: candidate.digest,
                    "invalid_scores": scored.candidate.invalid,
                },
            )
        if scored.baseline is not None:
            yield dg.MaterializeResult(
                asset_key=spec.key(keys.BASELINE_PREDICTIONS),
                metadata={
                    **_metadata(scored.baseline),
                    "baseline": scored.baseline_kind,
                    keys.BASELINE_VERSION: production.version if production else "none",
                    keys.BASELINE_DIGEST: production.digest if production else "none",
                },
            )

    return [model_predictions]


def build_report_asset(spec: ReleaseSpec, task: EvaluationTask) -> dg.AssetsDefinition:
    """evaluation_report: every gate of `task` judged once, with the evidence."""

    @dg.asset(
        key=spec.key(keys.EVALUATION_REPORT),
        deps=[spec.key(keys.CANDIDATE_PREDICTIONS), spec.key(keys.BASELINE_PREDICTIONS)],
        group_name=spec.named(keys.EVALUATION_GROUP),
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"duckdb", "html"},
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        report_store: dg.ResourceParam[Folder],
    ):
        """Candidate against production on the same rows, per segment, with intervals."""
        with warehouse.get(spec.model.name).held() as client:
            report = judge_candidate(task, client, spec, context.partition_key)
            ids = [gate.id for gate in model_gates(spec)]  # the report judged them in this order
            store_results(client, context.run.run_id, ids, report.results)
            folder = Path(report_store.path) / context.run.run_id
            folder.mkdir(parents=True, exist_ok=True)
            page = folder / "evaluation.html"
            page.write_text(
                html_report(report.title, report.metrics, report.results, report.images)
            )
            baseline = report.results[0].baseline_digest if report.results else "none"
            return dg.MaterializeResult(
                metadata={
                    keys.BASELINE_DIGEST: baseline or "none",
                    "gates": dg.MetadataValue.md(
                        "\n".join(
                            f"- **{gate_id}** ({r.target}): {r.verdict.value} - {r.summary}"
                            for gate_id, r in zip(ids, report.results, strict=True)
                        )
                    ),
                    "worst_segments": dg.MetadataValue.md(worst_segments_markdown(report.results)),
                    report.metrics_key: dg.MetadataValue.md(
                        report.metrics.to_markdown(index=False, floatfmt=".4f")
                    ),
                    **{
                        name: dg.MetadataValue.path(str(write_image(folder, name, png)))
                        for name, png in report.images.items()
                    },
                    "html_report": dg.MetadataValue.path(str(page)),
                    keys.SPEC_HASH: spec.spec_hash,
                }
            )

    return evaluation_report
