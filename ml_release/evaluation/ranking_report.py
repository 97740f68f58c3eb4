"""Judging the ranking gates of a spec, and the ranking metrics table people read.

The `evaluation_report` asset of a ranking release calls `evaluate_ranking`: it loads the paired
`RankingSet` once, judges every gate with `judge_ranking` (`valid_predictions` for ranking
scores lives here), and shows `ranking_metrics_table`: NDCG@k and recall@k of both models,
globally and in every segment, with support in queries and the reason a cell is undefined
instead of a number.
"""

import numpy as np
import pandas as pd

from ml_release.evaluation import ranking
from ml_release.evaluation.data import PredictionTables
from ml_release.evaluation.evidence import ALL, segment_slices
from ml_release.evaluation.ranking_data import RankingSet, invalid_scores, load_ranking_set
from ml_release.evaluation.report import Evaluation, forest_plots
from ml_release.evaluation.run import model_gates
from ml_release.gates.ranking import RANKING_DIRECTIONS
from ml_release.gates.result import GateResult, Verdict
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.warehouse import Warehouse

DEFAULT_K = 10
TABLE_MIN_SUPPORT = 1  # the table shows every number it can; gates apply their min_support


def evaluate_ranking(
    warehouse: Warehouse, spec: ReleaseSpec, tables: PredictionTables, trivial_baseline: bool
) -> Evaluation:
    """Every ranking gate judged on the paired holdout queries, with the metrics and plots."""
    data = load_ranking_set(warehouse, tables, spec.data.segments, trivial_baseline)
    gates = model_gates(spec)
    results = [judge_ranking(gate, data, spec) for gate in gates]
    return Evaluation(
        f"{spec.model.name}: ranking",
        results,
        ranking_metrics_table(data, spec.data.segments, table_ks(spec)),
        "ranking_metrics",
        forest_plots(gates, results),
    )


def judge_ranking(gate: GateSpec, data: RankingSet, spec: ReleaseSpec) -> GateResult:
    """One ranking gate's result (or valid_predictions' for ranking scores)."""
    name = gate.name
    if name == "valid_predictions":
        result = valid_predictions(gate, data)
    elif name.startswith("segment_"):
        metric = name.removeprefix("segment_").removesuffix("_vs_baseline")
        result = ranking.segment_vs_baseline(gate, metric, data, spec.data.segments)
    elif name.endswith("_vs_baseline"):
        result = ranking.vs_baseline(gate, name.removesuffix("_vs_baseline"), data)
    else:
        metric = name.removeprefix("min_")
        assert metric in RANKING_DIRECTIONS, name  # the catalog only makes these names
        result = ranking.floor(gate, metric, data)
    result.spec_hash = spec.spec_hash
    return result


def valid_predictions(gate: GateSpec, data: RankingSet) -> GateResult:
    """`valid_predictions` for ranking: every candidate score is a finite number."""
    bad = data.invalid
    examples = [
        {"eval_set": data.name, "row_id": str(data.row_ids[i]), "score": str(data.candidate[i])}
        for i in bad
    ]
    summary = (
        f"{len(bad)} scores are NaN or infinite, e.g. rows "
        + ", ".join(e["row_id"] for e in examples[:5])
        if len(bad)
        else "every score is a finite number"
    )
    return GateResult(
        gate.name,
        "all",
        Verdict.FAIL if len(bad) else Verdict.PASS,
        summary,
        "finite (ranking scores are real-valued)",
        observed=float(len(bad)),
        threshold=0.0,
        baseline=0.0,
        support={"rows": len(data.y)},
        examples=examples[: gate.params.examples],  # type: ignore[attr-defined]
    )


def table_ks(spec: ReleaseSpec) -> list[int]:
    """The cut-offs the spec's ranking gates use (10 when none names one)."""
    ks = {g.params.k for g in spec.gates if hasattr(g.params, "k")}  # type: ignore[attr-defined]
    return sorted(ks) or [DEFAULT_K]


def ranking_metrics_table(data: RankingSet, segments: list[str], ks: list[int]) -> pd.DataFrame:
    """Both models' NDCG@k and recall@k, globally and per segment (valid scores only)."""
    keep = np.ones(len(data.y), bool)
    keep[data.invalid] = False
    keep[invalid_scores(data.baseline)] = False
    records = []
    for metric in RANKING_DIRECTIONS:
        for k in ks:
            table = ranking.query_table(data, metric, k, keep)
            slices = [
                (ALL, ALL, np.ones(len(table.queries), bool)),
                *segment_slices(table.segments, segments, crossings=False),
            ]
            for column, value, mask in slices:
                support = table.support(mask)
                reason = ranking.undefined_reason(support, TABLE_MIN_SUPPORT)
                judged = mask & np.isfinite(table.candidate)
                candidate = None if reason else float(table.candidate[judged].mean())
                baseline = None if reason else float(table.baseline[judged].mean())
                records.append(
                    {
                        "metric": table.name,
                        "segment": ALL if column == ALL else f"{column}={value}",
                        "candidate": candidate,
                        "baseline": baseline,
                        "delta": None if reason else candidate - baseline,
                        "queries": support["n"],
                        "with_relevant": support["positives"],
                        "without_relevant": support["negatives"],
                        "undefined": reason,
                    }
                )
    return pd.DataFrame(records)
