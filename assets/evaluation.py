"""Evaluation assets: both models score the same rows; the report compares them, paired."""

from pathlib import Path

import dagster as dg
import numpy as np

from ml_release import keys
from ml_release.evaluation.data import load_eval_sets
from ml_release.evaluation.report import (
    forest_plot,
    html_report,
    image_markdown,
    metrics_table,
    reliability_plot,
    worst_segments_markdown,
)
from ml_release.evaluation.run import judge, model_gates
from ml_release.gates.store import store_results
from ml_release.jobs import latest_candidate
from ml_release.registry import PRODUCTION
from ml_release.scoring import (
    evaluation_rows,
    invalid_rows,
    predictions_table,
    score,
    training_prior,
)
from ml_release.spec import ReleaseSpec

EVALUATION_INPUTS = [keys.EVALUATION_HOLDOUT, keys.SERVING_LOG]


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
    """candidate_predictions and baseline_predictions for `spec`."""
    common = {
        "group_name": keys.EVALUATION_GROUP,
        "pool": keys.WAREHOUSE_POOL,
        "required_resource_keys": {"warehouse", "model_registry"},
        "kinds": {"duckdb", "scikit-learn"},
    }

    @dg.asset(
        name=keys.CANDIDATE_PREDICTIONS, deps=[keys.CANDIDATE_MODEL, *EVALUATION_INPUTS], **common
    )
    def candidate_predictions(context: dg.AssetExecutionContext):
        """The candidate's scores on the holdout and the labelled serving requests."""
        version, digest = latest_candidate(context.instance)
        registered = context.resources.model_registry.get().version(spec.model.name, version)
        rows = evaluation_rows(context.resources.warehouse.get(), spec)
        scores = score(Path(registered.path), spec, rows)
        bad = invalid_rows(scores)
        if len(bad):
            context.log.warning(f"{len(bad)} scores are not probabilities")
        return _store(
            context,
            keys.CANDIDATE_PREDICTIONS,
            predictions_table(rows, scores, spec),
            {
                keys.CANDIDATE_VERSION: version,
                keys.CANDIDATE_DIGEST: digest,
                "invalid_scores": len(bad),
            },
        )

    @dg.asset(
        name=keys.BASELINE_PREDICTIONS, deps=[keys.CANDIDATE_MODEL, *EVALUATION_INPUTS], **common
    )
    def baseline_predictions(context: dg.AssetExecutionContext):
        """Production's scores on the same rows, or a trivial model's when nothing is live."""
        registry = context.resources.model_registry.get()
        rows = evaluation_rows(context.resources.warehouse.get(), spec)
        production = registry.alias(spec.model.name, PRODUCTION)
        if production is None:
            prior = training_prior(context.resources.warehouse.get(), spec)
            scores = np.full(len(rows), prior)
            kind = f"trivial (constant {prior:.4f}): no production model yet"
        else:
            registered = registry.version(spec.model.name, production)
            scores = score(Path(registered.path), spec, rows)
            kind = f"production {production}"
        return _store(
            context,
            keys.BASELINE_PREDICTIONS,
            predictions_table(rows, scores, spec),
            {"baseline": kind, "baseline_version": production or "none"},
        )

    return [candidate_predictions, baseline_predictions]


def build_report_asset(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """evaluation_report: every model-quality gate judged once, with the evidence."""

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
        sets = load_eval_sets(warehouse, spec.data.segments, trivial)
        results = [judge(gate, sets, spec) for gate in model_gates(spec)]
        store_results(warehouse, context.run.run_id, results)
        metrics = metrics_table(sets, spec.evaluation.threshold)
        images = {f"reliability ({name})": reliability_plot(data) for name, data in sets.items()}
        for gate, result in zip(model_gates(spec), results, strict=True):
            if gate.name.startswith("segment_") and any("delta" in r for r in result.rows):
                images[f"{gate.name} ({result.target})"] = forest_plot(
                    result, getattr(gate.params, "max_drop", None)
                )
        folder = Path(context.resources.report_store.path) / context.run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / "evaluation.html"
        page.write_text(html_report(f"{spec.model.name}: evaluation", metrics, results, images))
        return dg.MaterializeResult(
            metadata={
                "baseline": kind,
                "gates": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{r.gate}** ({r.target}): {r.verdict.value} - {r.summary}"
                        for r in results
                    )
                ),
                "worst_segments": dg.MetadataValue.md(worst_segments_markdown(results)),
                "metrics": dg.MetadataValue.md(metrics.to_markdown(index=False, floatfmt=".4f")),
                **{
                    name: dg.MetadataValue.md(image_markdown(png, name))
                    for name, png in images.items()
                },
                "html_report": dg.MetadataValue.path(str(page)),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [evaluation_report]
