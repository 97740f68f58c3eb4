"""Catalog entries of the regression and multi-class gates, judged on `evaluation_report`.

They serve `model.task: regression` and `multiclass_classification`.
As for binary classification, each metric has three gates: `<metric>_vs_baseline` (global,
paired against production on the same rows), `segment_<metric>_vs_baseline` (every segment,
Bonferroni intervals), and an absolute bound (`max_<metric>` when lower is better, `min_`
otherwise). Regression: MAE, RMSE, pinball loss at `quantile`, calibration-in-the-large.
Multi-class: macro-F1, top-k accuracy (log loss shares the binary gates' names), and per-class
recall, whose "global" gate judges every class. Methods: docs/statistics.md.
"""

from typing import Literal

from pydantic import Field

from ml_release.gates.catalog_base import GateDefinition
from ml_release.gates.model_quality import (
    EvaluationParams,
    FloorParams,
    SegmentVsBaselineParams,
    VsBaselineParams,
)

REGRESSION_DIRECTIONS: dict[str, bool] = {
    "mae": False,
    "rmse": False,
    "pinball_loss": False,
    "calibration_in_the_large": False,
}
MULTICLASS_DIRECTIONS: dict[str, bool] = {
    "log_loss": False,
    "macro_f1": True,
    "top_k_accuracy": True,
    "class_recall": True,
}
TITLES = {
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "pinball_loss": "pinball loss at `quantile`",
    "calibration_in_the_large": "calibration-in-the-large |mean(y) - mean(prediction)|",
    "macro_f1": "macro-F1 over the classes present",
    "top_k_accuracy": "top-k accuracy",
    "class_recall": "recall of every class",
}
METHODS = {
    "mae": "paired t interval of the per-row absolute-error differences",
    "rmse": "delta-method paired t interval",
    "pinball_loss": "paired t interval of the per-row pinball-loss differences",
    "calibration_in_the_large": "percentile interval from normal draws of the two mean "
    "residuals (their paired covariance)",
    "log_loss": "paired t interval of the per-row log-loss differences",
    "macro_f1": "paired bootstrap of the (label, candidate, production) cell counts",
    "top_k_accuracy": "paired t interval of the per-row hit differences",
    "class_recall": "per class, paired t interval over the rows of that class",
}
EXAMPLE_CEILINGS = {
    "mae": 50.0,
    "rmse": 60.0,
    "pinball_loss": 25.0,
    "calibration_in_the_large": 10.0,
}


class PerClassParams(VsBaselineParams):
    """Every class against production, false alarms controlled across the classes."""

    multiplicity: Literal["bonferroni", "none"] = Field(
        "bonferroni", description="Per-class confidence 1 - (1 - confidence)/m over m classes."
    )


class QuantileMixin(EvaluationParams):
    """The quantile of the pinball loss."""

    quantile: float = Field(0.5, gt=0.0, lt=1.0, description="Quantile q of the pinball loss.")


class TopKMixin(EvaluationParams):
    """The k of top-k accuracy."""

    k: int = Field(2, ge=1, le=1000, description="A row counts when its class is in the top k.")


class PinballVsBaselineParams(VsBaselineParams, QuantileMixin):
    """Pinball loss against production at `quantile`."""


class PinballSegmentParams(SegmentVsBaselineParams, QuantileMixin):
    """Pinball loss against production in every segment at `quantile`."""


class PinballFloorParams(FloorParams, QuantileMixin):
    """A ceiling on the pinball loss at `quantile`."""


class TopKVsBaselineParams(VsBaselineParams, TopKMixin):
    """Top-k accuracy against production."""


class TopKSegmentParams(SegmentVsBaselineParams, TopKMixin):
    """Top-k accuracy against production in every segment."""


class TopKFloorParams(FloorParams, TopKMixin):
    """A floor on top-k accuracy."""


PARAMS = {
    "class_recall": (PerClassParams, SegmentVsBaselineParams, FloorParams),
    "pinball_loss": (PinballVsBaselineParams, PinballSegmentParams, PinballFloorParams),
    "top_k_accuracy": (TopKVsBaselineParams, TopKSegmentParams, TopKFloorParams),
}
EXTRA_EXAMPLE = {"pinball_loss": {"quantile": 0.9}, "top_k_accuracy": {"k": 2}}


def _first_release(metric: str, trivial: str) -> str:
    if metric in ("calibration_in_the_large", "class_recall"):
        return (
            "With no production model the comparison does not apply (`pass`, noted): a "
            f"{trivial} is right on average or in its majority class by construction; the "
            "absolute bound still applies."
        )
    return f"With no production model the candidate must be confidently better than a {trivial}."


def _entries(metric: str, higher: bool, family: str, trivial: str) -> list[GateDefinition]:
    vs, segment, floor = PARAMS.get(
        metric, (VsBaselineParams, SegmentVsBaselineParams, FloorParams)
    )
    better, title = ("higher" if higher else "lower"), TITLES[metric]
    margin = "max_drop" if higher else "max_relative_drop"
    extra = EXTRA_EXAMPLE.get(metric, {})
    per_class = metric == "class_recall"
    unit = "every class (Bonferroni over the classes)" if per_class else "all rows"
    bound = "min" if higher else "max"
    floor_value = 0.5 if higher else EXAMPLE_CEILINGS.get(metric, 0.9)
    return [
        GateDefinition(
            f"{metric}_vs_baseline",
            family,
            vs,
            f"{title} ({better} is better) no worse than production beyond the margin, on "
            f"{unit}, on the same rows.",
            verdict_rule=f"{METHODS[metric]} of candidate minus production at `confidence`: "
            "`fail` when it lies entirely beyond the tolerated drop (`max_drop`, or "
            "`max_relative_drop` of production's value), `pass` when entirely within it, "
            "`inconclusive` otherwise or below `min_support` rows"
            + (" (per class: rows of that class; `fail` if any class fails)" if per_class else "")
            + ". "
            + _first_release(metric, trivial),
            example={margin: 0.02, **extra},
        ),
        GateDefinition(
            f"segment_{metric}_vs_baseline",
            family,
            segment,
            f"{title} no worse than production beyond the margin in any segment"
            + (" and class." if per_class else "."),
            verdict_rule="The global rule in every value of every segment column"
            + (" and every class within it" if per_class else "")
            + ", with Bonferroni intervals over the judged slices: `fail` if any fails, else "
            "`inconclusive` if any judged slice is, else `pass`. Slices below `min_support` rows "
            "are listed as not judged; with no production model the gate does not apply "
            "(`pass`).",
            example={margin: 0.05, "min_support": 30, **extra},
        ),
        GateDefinition(
            f"{bound}_{metric}",
            family,
            floor,
            f"Absolute {'floor' if higher else 'ceiling'} on {title}"
            + (" (every class)." if per_class else "."),
            verdict_rule=f"`fail` when the candidate's {metric} is "
            f"{'below' if higher else 'above'} `threshold`"
            + (" in any class" if per_class else "")
            + ", `inconclusive` below `min_support` rows, otherwise `pass`; applies with or "
            "without a production model.",
            example={"threshold": floor_value, **extra},
        ),
    ]


def regression_gates() -> list[GateDefinition]:
    """Three gates per regression metric."""
    return [
        gate
        for metric, higher in REGRESSION_DIRECTIONS.items()
        for gate in _entries(metric, higher, "regression", "trivial model (the training mean)")
    ]


def multiclass_gates() -> list[GateDefinition]:
    """Three gates per multi-class metric; log loss uses the binary gates' names."""
    return [
        gate
        for metric, higher in MULTICLASS_DIRECTIONS.items()
        if metric != "log_loss"
        for gate in _entries(
            metric, higher, "multiclass", "trivial model (the training class shares)"
        )
    ]
