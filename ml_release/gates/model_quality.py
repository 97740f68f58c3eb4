"""Catalog entries of the model-quality gates: comparisons with production, floors, calibration.

For every metric with a direction there are three gates: `<metric>_vs_baseline` (global),
`segment_<metric>_vs_baseline` (every segment), and an absolute floor `min_<metric>` (or a
ceiling `max_<metric>` when lower is better). `calibration` bounds the expected calibration
error, and `valid_predictions` fails on any score that is not a probability.
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

# Direction is never guessed: True when greater is better (checked against ml_release.metrics).
METRIC_DIRECTIONS: dict[str, bool] = {
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
}
EvalSet = Literal["holdout", "serving"]
# Log loss means the same over two classes or many: its gates serve both tasks.
LOG_LOSS_TASKS = (
    " For `model.task: multiclass_classification` the per-row loss is -log p(true class) "
    "over all classes, and the trivial model predicts the training class shares."
)
# Example bounds for docs/gates.md (floors default to 0.65).
CEILING_EXAMPLES = {"log_loss": 0.45, "brier": 0.15, "ece": 0.05}


class EvaluationParams(GateParams):
    """Parameters shared by the model-quality gates."""

    eval_set: EvalSet = Field(
        "holdout",
        description="`holdout`, or `serving` (the labelled serving-log requests); list the gate "
        "once per set to judge both.",
    )
    min_support: int = Field(
        200,
        ge=1,
        description="Fewer rows: inconclusive, not a number (segment gates: a small segment, "
        "see `small_segments`).",
    )


class VsBaselineParams(EvaluationParams):
    """Candidate minus production on the same rows, with a tolerated drop."""

    max_drop: float | None = Field(None, ge=0.0, description="Tolerated absolute drop.")
    max_relative_drop: float | None = Field(
        None, ge=0.0, le=1.0, description="Tolerated drop as a share of the baseline value."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence.")

    @model_validator(mode="after")
    def _one_margin(self) -> "VsBaselineParams":
        if (self.max_drop is None) == (self.max_relative_drop is None):
            raise ValueError("give exactly one of `max_drop` (absolute) or `max_relative_drop`")
        return self


class SegmentVsBaselineParams(VsBaselineParams):
    """The same comparison in every segment, with false alarms controlled across segments."""

    segments: list[str] | None = Field(None, description="Segment columns (all of data.segments).")
    crossings: bool = Field(False, description="Also every pair of segment columns crossed.")
    multiplicity: Literal["bonferroni", "none"] = Field(
        "bonferroni", description="Per-segment confidence 1 - (1 - confidence)/m over m segments."
    )
    small_segments: SmallSegments = small_segments_field()


class FloorParams(EvaluationParams):
    """An absolute bound, for releases with or without a production model."""

    threshold: float = Field(
        description="The bound the candidate must meet (min or max), within the metric's range."
    )


class CalibrationParams(EvaluationParams):
    """Expected calibration error: a ceiling, and no worse than production beyond a margin."""

    max_ece: float = Field(0.05, ge=0.0, le=1.0, description="ECE ceiling (10 equal bins).")
    max_increase: float = Field(0.01, ge=0.0, le=1.0, description="Tolerated ECE increase.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence.")


class ValidityParams(GateParams):
    """Every score must be a finite probability."""

    examples: int = Field(10, ge=0, le=1000, description="Offending row ids shown.")


def model_quality_gates() -> list[GateDefinition]:
    """One entry per gate name (three per metric, plus calibration and validity)."""
    gates = []
    for metric, higher in METRIC_DIRECTIONS.items():
        better = "higher" if higher else "lower"
        gates += [
            GateDefinition(
                f"{metric}_vs_baseline",
                "model_quality",
                VsBaselineParams,
                f"{metric} ({better} is better) no worse than production beyond the "
                "margin, on the same rows"
                + (" (binary or multi-class)." if metric == "log_loss" else "."),
                verdict_rule=f"Paired interval of candidate minus production ({metric}, "
                f"{better} is better) at `confidence`: `fail` when it lies entirely beyond the "
                "tolerated drop (`max_drop`, or `max_relative_drop` of production's value), "
                "`pass` when it lies entirely within it, `inconclusive` otherwise or below "
                "`min_support`. With no production model the candidate must be confidently "
                "better than a trivial constant model."
                + (LOG_LOSS_TASKS if metric == "log_loss" else ""),
                example={"max_drop" if higher else "max_relative_drop": 0.01 if higher else 0.02},
            ),
            GateDefinition(
                f"segment_{metric}_vs_baseline",
                "model_quality",
                SegmentVsBaselineParams,
                f"{metric} no worse than production beyond the margin in any segment"
                + (" (binary or multi-class)." if metric == "log_loss" else "."),
                verdict_rule="The global rule in every value of every segment column, with "
                "Bonferroni intervals over the judged segments: `fail` if any segment fails, "
                "else `inconclusive` if any judged segment is, else `pass`. "
                + SMALL_SEGMENTS_RULE
                + " Segments whose metric is undefined (one class) are listed as not judged; "
                "nothing judged is `inconclusive`; with no production model the gate does not "
                "apply (`pass`).",
                example={
                    "max_drop" if higher else "max_relative_drop": 0.03 if higher else 0.05,
                    "min_support": 500,
                },
            ),
            GateDefinition(
                f"{'min' if higher else 'max'}_{metric}",
                "model_quality",
                FloorParams,
                f"Absolute {'floor' if higher else 'ceiling'} on {metric}"
                + (" (binary or multi-class)." if metric == "log_loss" else "."),
                verdict_rule=f"`fail` when the candidate's {metric} is "
                f"{'below' if higher else 'above'} `threshold`, `inconclusive` below "
                "`min_support`, otherwise `pass`; applies with or without a production model.",
                example={"threshold": CEILING_EXAMPLES.get(metric, 0.65)},
            ),
        ]
    gates += [
        GateDefinition(
            "calibration",
            "model_quality",
            CalibrationParams,
            "ECE under a ceiling and no worse than production beyond a margin.",
            verdict_rule="The worse of two verdicts: `fail` when the candidate's expected "
            "calibration error (10 equal-width bins) is above `max_ece`; and the paired bootstrap "
            "interval of its increase over production read against `max_increase` like the "
            "`*_vs_baseline` gates.",
            example={"max_ece": 0.05, "max_increase": 0.02},
        ),
        GateDefinition(
            "valid_predictions",
            "model_quality",
            ValidityParams,
            "Every candidate score is a finite probability (ranking: a finite number); "
            "failures name the rows.",
            verdict_rule="`fail` when any candidate score is NaN, infinite or outside [0, 1] "
            "(for `model.task: ranking`, whose scores are real-valued: NaN or infinite), with "
            "the row ids as examples (the other model gates are then `inconclusive`); "
            "otherwise `pass`.",
            example={"examples": 10},
        ),
    ]
    return gates
