"""Catalog entries of the serving-path gates, judged on `serving_report`.

The candidate and production are served side by side by the real serving runtime in the same
run (see docs/serving.md); a second production server measures how much two identical servers
differ, so run-to-run noise alone does not block.
"""

from pydantic import Field

from ml_release.gates.catalog_base import GateDefinition, GateParams


class LoadTimeParams(GateParams):
    """Process start to ready."""

    max_seconds: float = Field(30.0, gt=0.0, description="Longest tolerated load time, seconds.")


class MemoryParams(GateParams):
    """Peak resident memory of the server's process tree."""

    max_mb: float | None = Field(
        None, gt=0.0, description="Absolute ceiling in MiB (the pod's limit); none by default."
    )
    max_increase: float = Field(
        0.5, ge=0.0, description="Tolerated increase over production, as a share (0.5 = +50 %)."
    )


class LatencyVsBaselineParams(GateParams):
    """Single-request p99 latency against production's, judged on the ratio's interval."""

    max_increase: float = Field(
        0.25, ge=0.0, description="Tolerated p99 increase over production, as a share."
    )
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Confidence of the p99 ratio's interval."
    )
    max_noise: float = Field(
        0.5,
        gt=0.0,
        description="Two production servers differing by more than this share of their p99: "
        "the measurement is too noisy to judge (inconclusive).",
    )


class AgreementParams(GateParams):
    """The same rows answered one by one and in one batch."""

    tolerance: float = Field(1e-6, ge=0.0, description="Largest tolerated probability difference.")
    examples: int = Field(10, ge=0, le=1000, description="Disagreeing rows shown.")


class SchemaParams(GateParams):
    """The V2 response's outputs and class labels against production's."""


class CompatibilityParams(GateParams):
    """The artifact against the runtime it will run in."""


def serving_gates() -> list[GateDefinition]:
    """One entry per serving gate."""
    return [
        GateDefinition(
            "serving_load_time",
            "serving",
            LoadTimeParams,
            "Server process start to model ready, in the serving runtime.",
            verdict_rule="`fail` when the candidate took more than `max_seconds` from process "
            "start to ready, or did not load; otherwise `pass`.",
            example={"max_seconds": 30},
        ),
        GateDefinition(
            "serving_memory",
            "serving",
            MemoryParams,
            "Peak RSS of the server's process tree: under a ceiling, near production's.",
            verdict_rule="`fail` when peak RSS is above `max_mb` (when set) or above production's "
            "x (1 + `max_increase`) plus the difference between two production servers; "
            "otherwise `pass` (no production model: only `max_mb` applies).",
            example={"max_increase": 0.5, "max_mb": 2048},
        ),
        GateDefinition(
            "serving_latency_p99_vs_baseline",
            "serving",
            LatencyVsBaselineParams,
            "Single-request p99 no worse than production beyond the margin, judged on an "
            "interval of the p99 ratio from interleaved requests.",
            verdict_rule="Candidate and production get the same single requests interleaved "
            "step by step; the interval at `confidence` of p99(candidate) / p99(production) - 1 "
            "is a moving-block bootstrap over the paired steps. `fail` when it lies entirely "
            "above `max_increase`, `pass` when its upper bound is at most `max_increase`, "
            "`inconclusive` otherwise (send more `serving.requests`), with fewer than 20 paired "
            "requests, or when the two production servers' p99 differ by more than `max_noise`.",
            example={"max_increase": 0.25},
        ),
        GateDefinition(
            "batch_single_agreement",
            "serving",
            AgreementParams,
            "The same rows answered one by one and in a batch agree within the tolerance.",
            verdict_rule="`fail` when any row's probabilities differ by more than `tolerance` "
            "between its single request and the batch (rows listed); otherwise `pass`.",
            example={"tolerance": 1e-6},
        ),
        GateDefinition(
            "output_schema_stable",
            "serving",
            SchemaParams,
            "Output names, dtypes, shapes, class labels and probability columns equal "
            "production's, field by field.",
            verdict_rule="`fail` when any output name, datatype, shape, class label or "
            "probability column differs from production's (each field a row with both values); "
            "otherwise `pass`.",
            example={},
        ),
        GateDefinition(
            "runtime_compatible",
            "serving",
            CompatibilityParams,
            "Library versions match the runtime, loading raises no warning, and the request "
            "contract sends every feature the model expects.",
            verdict_rule="`fail` when scikit-learn differs from the runtime's, skops or Python "
            "in minor or numpy in major version, loading warned, or the model expects a feature "
            "the request contract does not send; otherwise `pass`.",
            example={},
        ),
    ]
