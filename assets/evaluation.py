"""Evaluation assets: both models score the same rows; the report compares them, paired.

One builder serves every tabular task: `ml_release.evaluation.tasks` says how the task's rows
are read, scored and judged.
"""

from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.evaluation.report import html_report, image_markdown, worst_segments_markdown
from ml_release.evaluation.tasks import EvaluationTask, evaluation_task
from ml_release.gates.store import store_results
from ml_release.jobs import latest_candidate
from ml_release.registry import PRODUCTION
from ml_release.spec import ReleaseSpec


def _store(context, table: str, frame, extra: dict) -> dg.MaterializeResult:
    rows = context.resources.warehouse.get().replace_from_frame(table, frame)
    counts = frame.groupby("eval_set").size().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            **{f"rows.{k}": int(v) for k, v in counts.items()},
            **extra,
        }
    )


def build_evaluation_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """candidate_predictions, baseline_predictions and evaluation_report for `spec`'s task."""
    task = evaluation_task(spec)
    return [*build_prediction_assets(spec, task), build_report_asset(spec, task)]


def build_prediction_assets(spec: ReleaseSpec, task: EvaluationTask) -> list[dg.AssetsDefinition]:
    """candidate_predictions and baseline_predictions: both models score `task`'s rows."""
    common = {
        "deps": [keys.CANDIDATE_MODEL, *task.inputs],
        "group_name": keys.EVALUATION_GROUP,
        "pool": keys.WAREHOUSE_POOL,
        "required_resource_keys": {"warehouse", "model_registry"},
        "kinds": {"duckdb", "scikit-learn"},
    }

    @dg.asset(name=keys.CANDIDATE_PREDICTIONS, description=task.candidate_description, **common)
    def candidate_predictions(context: dg.AssetExecutionContext):
        version, digest = latest_candidate(context.instance)
        registered = context.resources.model_registry.get().version(spec.model.name, version)
        rows = task.rows(context.resources.warehouse.get(), spec)
        scores = task.score(Path(registered.path), spec, rows)
        bad = task.invalid(scores)
        if len(bad):
            context.log.warning(f"{len(bad)} scores are {task.invalid_means}")
        return _store(
            context,
            keys.CANDIDATE_PREDICTIONS,
            task.table(rows, scores, spec),
            {
                keys.CANDIDATE_VERSION: version,
                keys.CANDIDATE_DIGEST: digest,
                "invalid_scores": len(bad),
                **task.counts(rows),
            },
        )

    @dg.asset(name=keys.BASELINE_PREDICTIONS, description=task.baseline_description, **common)
    def baseline_predictions(context: dg.AssetExecutionContext):
        registry = context.resources.model_registry.get()
        warehouse = context.resources.warehouse.get()
        rows = task.rows(warehouse, spec)
        production = registry.alias(spec.model.name, PRODUCTION)
        if production is None:
            scores, kind = task.trivial(warehouse, spec, rows)
        else:
            registered = registry.version(spec.model.name, production)
            scores = task.score(Path(registered.path), spec, rows)
            kind = f"production {production}"
        return _store(
            context,
            keys.BASELINE_PREDICTIONS,
            task.table(rows, scores, spec),
            {"baseline": kind, "baseline_version": production or "none"},
        )

    return [candidate_predictions, baseline_predictions]


def build_report_asset(spec: ReleaseSpec, task: EvaluationTask) -> dg.AssetsDefinition:
    """evaluation_report: every gate of `task` judged once, with the evidence."""

    @dg.asset(
        name=keys.EVALUATION_REPORT,
        deps=[keys.CANDIDATE_PREDICTIONS, keys.BASELINE_PREDICTIONS],
        group_name=keys.EVALUATION_GROUP,
        pool=keys.WAREHOUSE_POOL,
        required_resource_keys={"warehouse", "report_store"},
        kinds={"duckdb", "html"},
    )
    def evaluation_report(context: dg.AssetExecutionContext):
        """Candidate against production on the same rows, per segment, with intervals."""
        warehouse = context.resources.warehouse.get()
        baseline = context.instance.get_latest_materialization_event(
            dg.AssetKey(keys.BASELINE_PREDICTIONS)
        )
        baseline_meta = baseline.asset_materialization.metadata if baseline else {}
        kind = getattr(baseline_meta.get("baseline"), "value", "unknown")
        trivial = getattr(baseline_meta.get("baseline_version"), "value", "none") == "none"
        report = task.evaluate(warehouse, spec, trivial)
        store_results(warehouse, context.run.run_id, report.results)
        folder = Path(context.resources.report_store.path) / context.run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / "evaluation.html"
        page.write_text(html_report(report.title, report.metrics, report.results, report.images))
        return dg.MaterializeResult(
            metadata={
                "baseline": kind,
                "gates": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{r.gate}** ({r.target}): {r.verdict.value} - {r.summary}"
                        for r in report.results
                    )
                ),
                "worst_segments": dg.MetadataValue.md(worst_segments_markdown(report.results)),
                report.metrics_key: dg.MetadataValue.md(
                    report.metrics.to_markdown(index=False, floatfmt=".4f")
                ),
                **{
                    name: dg.MetadataValue.md(image_markdown(png, name))
                    for name, png in report.images.items()
                },
                "html_report": dg.MetadataValue.path(str(page)),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return evaluation_report
