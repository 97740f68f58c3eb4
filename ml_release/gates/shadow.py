"""Catalog entries of the shadow-replay gates, judged on `shadow_report`.

Logged production requests are replayed to the candidate and to production, both served by
the serving runtime in the same run; the gates compare their answers request by request.
"""

from pydantic import Field

from ml_release.gates.catalog_base import (
    SMALL_SEGMENTS_RULE,
    GateDefinition,
    GateParams,
    SmallSegments,
    small_segments_field,
)
from ml_release.gates.serving import LatencyVsBaselineParams


class AgreementRateParams(GateParams):
    """Share of replayed requests where candidate and production give the same label."""

    min_agreement: float = Field(0.98, ge=0.0, le=1.0, description="Lowest tolerated agreement.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Exact binomial interval.")


class ErrorRateParams(GateParams):
    """Requests the candidate failed (HTTP error, timeout, refused connection)."""

    max_error_rate: float = Field(
        0.005, ge=0.0, le=1.0, description="Highest tolerated candidate error rate."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Exact binomial interval.")


class FlipRateParams(GateParams):
    """Per segment, share of requests whose label flips between production and candidate."""

    max_flip_rate: float = Field(0.05, ge=0.0, le=1.0, description="Highest tolerated flip rate.")
    min_support: int = Field(
        100, ge=1, description="Fewer requests: a small segment (see `small_segments`)."
    )
    small_segments: SmallSegments = small_segments_field()
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Family confidence, Bonferroni across segments."
    )


def shadow_gates() -> list[GateDefinition]:
    """One entry per shadow gate."""
    return [
        GateDefinition(
            "shadow_agreement",
            "shadow",
            AgreementRateParams,
            "Label agreement with production on replayed production requests.",
            verdict_rule="Exact (Clopper-Pearson) interval of label agreement: `fail` when it "
            "lies below `min_agreement`, `pass` when its lower bound is at least "
            "`min_agreement`, `inconclusive` otherwise.",
            example={"min_agreement": 0.9},
        ),
        GateDefinition(
            "shadow_error_rate",
            "shadow",
            ErrorRateParams,
            "Candidate error rate (HTTP errors, timeouts) on replayed production requests.",
            verdict_rule="Exact interval of the candidate's error rate: `fail` when it lies above "
            "`max_error_rate`, `pass` when its upper bound is at most `max_error_rate`, "
            "`inconclusive` otherwise.",
            example={"max_error_rate": 0.01},
        ),
        GateDefinition(
            "shadow_latency_vs_baseline",
            "shadow",
            LatencyVsBaselineParams,
            "Candidate p99 on replayed requests no worse than production's beyond the margin, "
            "judged on an interval of the p99 ratio.",
            verdict_rule="The replayed requests timed on both servers (each sent to one, then "
            "the other) are paired; the interval at `confidence` of p99(candidate) / "
            "p99(production) - 1 is a moving-block bootstrap over them. `fail` when it lies "
            "entirely above `max_increase`, `pass` when its upper bound is at most "
            "`max_increase`, `inconclusive` otherwise, with fewer than 20 paired requests, or "
            "when production's p99 on odd and even requests differ by more than `max_noise`.",
            example={"max_increase": 0.5},
        ),
        GateDefinition(
            "segment_flip_rate",
            "shadow",
            FlipRateParams,
            "In every segment, the share of requests whose label flips stays under the limit.",
            verdict_rule="Per segment with `min_support` requests, the flip-rate interval "
            "(Bonferroni across judged segments): `fail` when any lies above `max_flip_rate`, "
            "`pass` when every upper bound is at most `max_flip_rate`, `inconclusive` otherwise. "
            + SMALL_SEGMENTS_RULE,
            example={"max_flip_rate": 0.1, "min_support": 100},
        ),
    ]
