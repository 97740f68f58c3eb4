"""Catalog entries of the shadow-replay gates, judged on `shadow_report`.

Logged production requests are replayed to the candidate and to production, both served by
the serving runtime in the same run; the gates compare their answers request by request.
"""

from pydantic import Field

from ml_release.gates.catalog_base import GateDefinition, GateParams
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
    min_support: int = Field(100, ge=1, description="Fewer requests: the segment is not judged.")
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
        ),
        GateDefinition(
            "shadow_error_rate",
            "shadow",
            ErrorRateParams,
            "Candidate error rate (HTTP errors, timeouts) on replayed production requests.",
        ),
        GateDefinition(
            "shadow_latency_vs_baseline",
            "shadow",
            LatencyVsBaselineParams,
            "Candidate p99 on replayed requests no worse than production's beyond the margin "
            "and production's own noise.",
        ),
        GateDefinition(
            "segment_flip_rate",
            "shadow",
            FlipRateParams,
            "In every segment, the share of requests whose label flips stays under the limit.",
        ),
    ]
