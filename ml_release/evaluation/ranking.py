"""The ranking gates (`model.task: ranking`), judged from paired per-query metric values.

NDCG@k and recall@k are means of per-query values, so the candidate-minus-production delta is
the mean of per-query differences on the same queries, and its paired t interval is the exact
method (`ml_release.stats.paired_mean_delta`); support counts queries, and queries without a
relevant row have no value and are left out (and counted). Segments are sets of queries; the
segment gates use Bonferroni intervals over the judged segments and `decide_segments`, as the
classification segment gates do. Verdicts follow DESIGN §6 through `ml_release.stats.decide`.
Without production the global gates compare with a random ranking, which the candidate must
beat; segment gates do not apply. Method: docs/statistics.md#ranking.
"""

from dataclasses import dataclass

import numpy as np

from ml_release.evaluation import evidence
from ml_release.evaluation.gates import beat_trivial
from ml_release.evaluation.ranking_data import RankingSet, invalid_scores
from ml_release.gates.ranking import (
    RANKING_DIRECTIONS,
    RankingFloorParams,
    RankingSegmentParams,
    RankingVsBaselineParams,
)
from ml_release.gates.result import GateResult, Verdict
from ml_release.metrics import ndcg_by_query, recall_by_query
from ml_release.spec import GateSpec
from ml_release.stats import Comparison, paired_mean_delta

BY_QUERY = {"ndcg_at_k": ndcg_by_query, "recall_at_k": recall_by_query}
DIRECTION = evidence.direction(higher=True)


@dataclass(frozen=True)
class QueryTable:
    """One metric at one k, per query, for both models; NaN for a query without relevant row."""

    name: str
    queries: np.ndarray
    candidate: np.ndarray
    baseline: np.ndarray
    segments: dict[str, np.ndarray]

    def support(self, mask: np.ndarray) -> dict[str, int]:
        """Queries in `mask`: all, with a relevant row (judged), without."""
        judged = int((mask & np.isfinite(self.candidate)).sum())
        return {"n": int(mask.sum()), "positives": judged, "negatives": int(mask.sum()) - judged}

    def compare(self, mask: np.ndarray, confidence: float) -> Comparison:
        """Candidate - production, paired t over the judged queries of `mask`."""
        keep = mask & np.isfinite(self.candidate)
        return paired_mean_delta(
            self.candidate[keep], self.baseline[keep], confidence=confidence, metric=self.name
        )


def query_table(data: RankingSet, metric: str, k: int, keep: np.ndarray | None = None):
    """Per-query values of `metric`@`k` for both models (rows in `keep` only, when given)."""
    rows = np.ones(len(data.y), bool) if keep is None else keep
    by_query = BY_QUERY[metric]
    queries, candidate = by_query(data.y[rows], data.candidate[rows], data.query_ids[rows], k)
    _, baseline = by_query(data.y[rows], data.baseline[rows], data.query_ids[rows], k)
    # Segments are constant within a query (checked on load): the first row's value is the query's.
    _, first = np.unique(data.query_ids[rows].astype(str), return_index=True)
    segments = {c: v[rows][first] for c, v in data.segments.items()}
    name = f"{metric.removesuffix('_at_k')}@{k}"
    return QueryTable(name, queries, candidate, baseline, segments)


def undefined_reason(support: dict[str, int], min_support: int) -> str:
    """Why a slice gets no number: no query with a relevant row, or too few; '' otherwise."""
    if support["positives"] == 0:
        return f"no query with a relevant row ({support['n']} queries)"
    if support["positives"] < min_support:
        return (
            f"{support['positives']} queries with a relevant row, below min_support={min_support}"
        )
    return ""


def _unusable(gate: GateSpec, data: RankingSet) -> GateResult | None:
    if len(data.invalid) or len(invalid_scores(data.baseline)):
        whose = "candidate" if len(data.invalid) else "production"
        count = len(data.invalid) or len(invalid_scores(data.baseline))
        return GateResult(
            gate.name,
            data.name,
            Verdict.INCONCLUSIVE,
            f"{count} {whose} scores are NaN or infinite (see valid_predictions): "
            "no ranking metric is computed on them",
            "n/a",
        )
    return None


def _query_support(support: dict[str, int]) -> dict[str, int]:
    return {
        "queries": support["n"],
        "queries_with_relevant": support["positives"],
        "queries_without_relevant": support["negatives"],
    }


def vs_baseline(gate: GateSpec, metric: str, data: RankingSet) -> GateResult:
    """`<metric>_vs_baseline`: the paired comparison over every query."""
    params: RankingVsBaselineParams = gate.params  # type: ignore[assignment]
    if (unusable := _unusable(gate, data)) is not None:
        return unusable
    table = query_table(data, metric, params.k)
    everything = np.ones(len(table.queries), bool)
    support = table.support(everything)
    comparison = table.compare(everything, params.confidence)
    higher = RANKING_DIRECTIONS[metric]
    if data.trivial_baseline and comparison.defined and support["positives"] >= params.min_support:
        decision = beat_trivial(comparison, higher, trivial="random-ranking")
    else:
        decision = evidence.decide_vs_baseline(comparison, params, higher, support["positives"])
    return evidence.comparison_result(
        gate.name,
        data.name,
        comparison,
        decision,
        support,
        f"{table.name} {comparison.delta:+.4f} [{comparison.low:+.4f}, {comparison.high:+.4f}] "
        f"over {support['positives']:,} queries with a relevant row: {decision.reason}",
        f"per-query {comparison.method}, {params.confidence:.0%} interval",
        threshold=evidence.margin(params),
        direction=DIRECTION,
        support=_query_support(support),
    )


def segment_vs_baseline(
    gate: GateSpec, metric: str, data: RankingSet, segments: list[str]
) -> GateResult:
    """`segment_<metric>_vs_baseline`: every segment of queries, false alarms controlled."""
    params: RankingSegmentParams = gate.params  # type: ignore[assignment]
    if (unusable := _unusable(gate, data)) is not None:
        return unusable
    if data.trivial_baseline:
        return evidence.no_production(gate.name, data.name, "random-ranking")
    table = query_table(data, metric, params.k)

    def check(mask: np.ndarray) -> tuple[dict, str, bool]:
        support = table.support(mask)
        reason = undefined_reason(support, params.min_support)
        return support, reason, bool(reason)  # too few queries with a relevant row: small

    slices = evidence.segment_slices(table.segments, params.segments or segments, params.crossings)
    plan = evidence.plan_slices(slices, check, params.small_segments)
    rows, confidence = evidence.judge_slices(
        plan.judged, table.compare, params, RANKING_DIRECTIONS[metric]
    )
    summary = evidence.named_segments(rows, lambda r: f"{r['positives']:,} queries") or (
        f"all {len(rows)} judged segments within the margin" if rows else "no segment judged"
    )
    return evidence.segment_result(
        gate.name,
        data.name,
        rows,
        plan,
        f"{table.name}: {summary}",
        f"per-segment per-query paired_t at {confidence:.2%} each "
        f"({params.multiplicity} over {len(rows)} segments)",
        params.small_segments,
        threshold=evidence.margin(params),
        direction=DIRECTION,
    )


def floor(gate: GateSpec, metric: str, data: RankingSet) -> GateResult:
    """`min_<metric>`: the candidate's mean over the queries with a relevant row, a floor."""
    params: RankingFloorParams = gate.params  # type: ignore[assignment]
    if (unusable := _unusable(gate, data)) is not None:
        return unusable
    table = query_table(data, metric, params.k)
    support = table.support(np.ones(len(table.queries), bool))
    value = None
    if reason := undefined_reason(support, params.min_support):
        verdict, summary = Verdict.INCONCLUSIVE, f"{table.name} undefined: {reason}"
    else:
        value = float(np.nanmean(table.candidate))
        verdict = Verdict.PASS if value >= params.threshold else Verdict.FAIL
        summary = f"{table.name} {value:.4f} vs floor {params.threshold}"
    return GateResult(
        gate.name,
        data.name,
        verdict,
        summary,
        "mean over the queries with a relevant row",
        observed=value,
        threshold=params.threshold,
        direction=DIRECTION,
        support=_query_support(support),
    )
