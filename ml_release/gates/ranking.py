"""Catalog entries of the ranking gates (`model.task: ranking`), judged on `evaluation_report`.

For NDCG@k and recall@k there are three gates each, as for the classification metrics:
`<metric>_vs_baseline` (global), `segment_<metric>_vs_baseline` (every segment) and an absolute
floor `min_<metric>`. Every metric is a mean of per-query values, so the comparison with
production is a paired t interval over the per-query differences, and support counts queries
(those with a relevant row). Methods: docs/statistics.md#ranking.
"""

from typing import Literal

from pydantic import Field, model_validator

from ml_release.gates.catalog_base import (
    SMALL_SEGMENTS_RULE,
    GateDefinition,
    GateParams,
    SmallSegments,
    small_segments_field,
)

# Direction is never guessed (checked against ml_release.metrics.RANKING_METRICS by a test).
RANKING_DIRECTIONS: dict[str, bool] = {"ndcg_at_k": True, "recall_at_k": True}
TITLES = {"ndcg_at_k": "NDCG@k", "recall_at_k": "recall@k"}


class RankingParams(GateParams):
    """Parameters shared by the ranking gates."""

    k: int = Field(10, ge=1, le=1000, description="Top positions of each query that count.")
    min_support: int = Field(
        30,
        ge=2,
        description="Fewer queries with a relevant row: inconclusive (global) or a small "
        "segment (see `small_segments`), never a number.",
    )


class RankingVsBaselineParams(RankingParams):
    """Candidate minus production on the same queries, with a tolerated drop."""

    max_drop: float | None = Field(None, ge=0.0, le=1.0, description="Tolerated absolute drop.")
    max_relative_drop: float | None = Field(
        None, ge=0.0, le=1.0, description="Tolerated drop as a share of the baseline value."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence.")

    @model_validator(mode="after")
    def _one_margin(self) -> "RankingVsBaselineParams":
        if (self.max_drop is None) == (self.max_relative_drop is None):
            raise ValueError("give exactly one of `max_drop` (absolute) or `max_relative_drop`")
        return self


class RankingSegmentParams(RankingVsBaselineParams):
    """The same comparison in every segment (query-level), false alarms controlled across them."""

    segments: list[str] | None = Field(None, description="Segment columns (all of data.segments).")
    crossings: bool = Field(False, description="Also every pair of segment columns crossed.")
    multiplicity: Literal["bonferroni", "none"] = Field(
        "bonferroni", description="Per-segment confidence 1 - (1 - confidence)/m over m segments."
    )
    small_segments: SmallSegments = small_segments_field()


class RankingFloorParams(RankingParams):
    """An absolute floor, for releases with or without a production model."""

    threshold: float = Field(ge=0.0, le=1.0, description="The floor the candidate must reach.")


def _vs_rule(title: str) -> str:
    return (
        f"Per-query {title} of both models on the same queries (queries without a relevant row "
        "excluded); paired t interval at `confidence` of the mean per-query difference, "
        "candidate minus production: `fail` when it lies entirely below the tolerated drop "
        "(`max_drop`, or `max_relative_drop` of production's value), `pass` when it lies "
        "entirely within it, `inconclusive` otherwise or with fewer than `min_support` queries. "
        "With no production model the candidate must be confidently better than a random "
        "ranking (seeded by `evaluation.seed`)."
    )


def ranking_gates() -> list[GateDefinition]:
    """One entry per ranking gate name (three per metric)."""
    gates = []
    for metric, title in TITLES.items():
        gates += [
            GateDefinition(
                f"{metric}_vs_baseline",
                "ranking",
                RankingVsBaselineParams,
                f"{title} (higher is better) no worse than production beyond the margin, on the "
                "same queries.",
                verdict_rule=_vs_rule(title),
                example={"k": 10, "max_drop": 0.01},
            ),
            GateDefinition(
                f"segment_{metric}_vs_baseline",
                "ranking",
                RankingSegmentParams,
                f"{title} no worse than production beyond the margin in any segment of queries.",
                verdict_rule="The global rule in every value of every segment column (segments "
                "are sets of queries: a segment column must be constant within a query), with "
                "Bonferroni intervals over the judged segments: `fail` if any segment fails, "
                "else `inconclusive` if any judged segment is, else `pass`. Support is the "
                "queries with a relevant row. "
                + SMALL_SEGMENTS_RULE
                + " Nothing judged is `inconclusive`; with no production model the gate does not "
                "apply (`pass`).",
                example={"k": 10, "max_drop": 0.03, "min_support": 50},
            ),
            GateDefinition(
                f"min_{metric}",
                "ranking",
                RankingFloorParams,
                f"Absolute floor on {title}.",
                verdict_rule=f"`fail` when the candidate's mean {title} over the queries with a "
                "relevant row is below `threshold`, `inconclusive` with fewer than "
                "`min_support` such queries, otherwise `pass`; applies with or without a "
                "production model.",
                example={"k": 10, "threshold": 0.6},
            ),
        ]
    return gates
