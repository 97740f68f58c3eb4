"""The regression and multi-class gates: one method over a `Measure` per metric.

A `Measure` says how a metric is computed on a slice of rows and how candidate and baseline are
compared there (`ml_release.stats`). The gates then follow the binary ones
(`ml_release.evaluation.gates`): the global comparison against production, or against the
trivial model before the first release (the candidate must be confidently better, except for
calibration-in-the-large and per-class recall, which the trivial model wins by construction);
segment comparisons with Bonferroni intervals; absolute bounds. Per-class recall judges every
class (and every segment and class) as a family.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml_release.evaluation import evidence
from ml_release.evaluation.data import EvalSet
from ml_release.evaluation.gates import beat_trivial
from ml_release.gates.result import GateResult, Verdict
from ml_release.spec import EvaluationSpec, GateSpec
from ml_release.stats import Comparison

NOT_AGAINST_TRIVIAL = ("calibration_in_the_large", "class_recall")


@dataclass(frozen=True)
class Measure:
    """One metric of a task: its value and its paired comparison on the rows in a mask."""

    name: str
    higher: bool
    value: Callable[[EvalSet, np.ndarray], float]
    compare: Callable[[EvalSet, np.ndarray, float], Comparison]
    method: str


def _unusable(gate: GateSpec, data: EvalSet, means: str) -> GateResult | None:
    if len(data.invalid):
        return GateResult(
            gate.name,
            data.name,
            Verdict.INCONCLUSIVE,
            f"{len(data.invalid)} candidate scores are {means} (see valid_predictions): no "
            "metric is computed on them",
            "n/a",
        )
    return None


def _support(mask: np.ndarray) -> dict[str, int]:
    return {"n": int(mask.sum())}


def vs_baseline(gate: GateSpec, measure: Measure, data: EvalSet, means: str) -> GateResult:
    """`<metric>_vs_baseline`: the paired comparison on every row."""
    params = gate.params
    if (unusable := _unusable(gate, data, means)) is not None:
        return unusable
    if data.trivial_baseline and measure.name in NOT_AGAINST_TRIVIAL:
        return GateResult(
            gate.name,
            data.name,
            Verdict.PASS,
            f"no production model yet: the comparison does not apply (the training mean is "
            f"right on average by construction; max_{measure.name} still applies)",
            "n/a",
        )
    everything = np.ones(len(data.y), bool)
    comparison = measure.compare(data, everything, params.confidence)  # type: ignore[attr-defined]
    if data.trivial_baseline and comparison.defined and len(data.y) >= params.min_support:  # type: ignore[attr-defined]
        trivial = "class-share" if hasattr(data, "classes") else "training-mean"
        decision = beat_trivial(comparison, measure.higher, trivial=trivial)
    else:
        decision = evidence.decide_vs_baseline(comparison, params, measure.higher, len(data.y))
    return evidence.comparison_result(
        gate.name,
        data.name,
        comparison,
        decision,
        _support(everything),
        f"{comparison.metric} {comparison.delta:+.4g} [{comparison.low:+.4g}, "
        f"{comparison.high:+.4g}], n={len(data.y):,}: {decision.reason}",
        f"{measure.method}, {params.confidence:.0%} interval",  # type: ignore[attr-defined]
        threshold=evidence.margin(params),
        direction=evidence.direction(measure.higher),
        support={"rows": len(data.y)},
    )


def slices(
    data: EvalSet, columns: list[str], crossings: bool, per_class: bool
) -> list[tuple[str, str, np.ndarray]]:
    """(column, value, mask) of every segment value (and crossing), each split by class."""
    parts = list(evidence.segment_slices(data.segments, columns, crossings))
    if not per_class:
        return parts
    classes = getattr(data, "classes", [])
    return [
        (f"{column}, class", f"{value}, {name}", mask & (data.y == position))
        for column, value, mask in parts
        for position, name in enumerate(classes)
    ]


def class_slices(data: EvalSet) -> list[tuple[str, str, np.ndarray]]:
    """("class", name, rows of that class) for every class of a multi-class set."""
    return [("class", name, data.y == i) for i, name in enumerate(getattr(data, "classes", []))]


def judge_family(
    gate: GateSpec,
    measure: Measure,
    data: EvalSet,
    parts: list[tuple[str, str, np.ndarray]],
    what: str,
) -> GateResult:
    """Every slice of `parts` against production, Bonferroni across the judged ones."""
    params = gate.params
    policy = getattr(params, "small_segments", "pool")

    def check(mask: np.ndarray) -> tuple[dict, str, bool]:
        n = int(mask.sum())
        if n < params.min_support:  # type: ignore[attr-defined]
            return _support(mask), f"n={n} below min_support={params.min_support}", True  # type: ignore[attr-defined]
        return _support(mask), "", False

    plan = evidence.plan_slices(parts, check, policy)
    rows, confidence = evidence.judge_slices(
        plan.judged, lambda mask, c: measure.compare(data, mask, c), params, measure.higher
    )
    summary = evidence.named_segments(rows, lambda r: f"n={r['n']:,}") or (
        f"all {len(rows)} judged {what} within the margin" if rows else f"no {what} judged"
    )
    return evidence.segment_result(
        gate.name,
        data.name,
        rows,
        plan,
        f"{measure.name}: {summary}",
        f"per-slice {measure.method} at {confidence:.2%} each "
        f"({params.multiplicity} over {len(rows)} {what})",  # type: ignore[attr-defined]
        policy,
        threshold=evidence.margin(params),
        direction=evidence.direction(measure.higher),
    )


def segment_vs_baseline(
    gate: GateSpec, measure: Measure, data: EvalSet, segments: list[str], means: str
) -> GateResult:
    """`segment_<metric>_vs_baseline`: every segment (and class, for per-class recall)."""
    params = gate.params
    if (unusable := _unusable(gate, data, means)) is not None:
        return unusable
    if data.trivial_baseline:
        return evidence.no_production(gate.name, data.name, "trivial-model")
    columns = params.segments or segments  # type: ignore[attr-defined]
    parts = slices(data, columns, params.crossings, measure.name == "class_recall")  # type: ignore[attr-defined]
    return judge_family(gate, measure, data, parts, "segments")


def per_class_vs_baseline(gate: GateSpec, measure: Measure, data: EvalSet, means: str):
    """`class_recall_vs_baseline`: every class against production, Bonferroni over classes."""
    if (unusable := _unusable(gate, data, means)) is not None:
        return unusable
    if data.trivial_baseline:
        return GateResult(
            gate.name,
            data.name,
            Verdict.PASS,
            "no production model yet: per-class comparisons do not apply (first release: "
            "min_class_recall and the trivial-model checks of the other metrics)",
            "n/a",
        )
    return judge_family(gate, measure, data, class_slices(data), "classes")


def bound(gate: GateSpec, measure: Measure, data: EvalSet, means: str) -> GateResult:
    """`max_<metric>` / `min_<metric>` (per-class recall: every class) on the candidate."""
    params = gate.params
    if (unusable := _unusable(gate, data, means)) is not None:
        return unusable
    everything = np.ones(len(data.y), bool)
    parts = (
        class_slices(data) if measure.name == "class_recall" else [("(all)", "(all)", everything)]
    )
    values, small = {}, []
    for _column, value, mask in parts:
        if mask.sum() < params.min_support:  # type: ignore[attr-defined]
            small.append(f"{value} (n={int(mask.sum())})")
        else:
            values[value] = measure.value(data, mask)
    threshold = params.threshold  # type: ignore[attr-defined]
    beyond = {
        k: v for k, v in values.items() if (v < threshold if measure.higher else v > threshold)
    }
    worst = (min if measure.higher else max)(values.values(), default=None)
    word = "floor" if measure.higher else "ceiling"
    if beyond:
        verdict = Verdict.FAIL
        summary = "; ".join(f"{k}: {measure.name} {v:.4g}" for k, v in beyond.items())
        summary += f" vs {word} {threshold}"
    elif small or not values:
        verdict = Verdict.INCONCLUSIVE
        summary = f"{measure.name} undefined below min_support: {', '.join(small) or 'no rows'}"
    else:
        verdict = Verdict.PASS
        summary = f"{measure.name} {worst:.4g} vs {word} {threshold}"
    return GateResult(
        gate.name,
        data.name,
        verdict,
        summary,
        "point estimate"
        + (" per class" if len(parts) > 1 or measure.name == "class_recall" else ""),
        observed=worst,
        threshold=threshold,
        direction=evidence.direction(measure.higher),
        support={"rows": len(data.y)},
        rows=[{"slice": k, measure.name: v} for k, v in values.items()],
    )


def judge_task_gate(
    gate: GateSpec,
    measures: Callable[[GateSpec, EvaluationSpec], Measure],
    data: EvalSet,
    settings: EvaluationSpec,
    segments: list[str],
    means: str,
) -> GateResult:
    """One regression or multi-class gate's result from its name."""
    measure = measures(gate, settings)
    name = gate.name
    if name.startswith("segment_"):
        return segment_vs_baseline(gate, measure, data, segments, means)
    if name == "class_recall_vs_baseline":
        return per_class_vs_baseline(gate, measure, data, means)
    if name.endswith("_vs_baseline"):
        return vs_baseline(gate, measure, data, means)
    return bound(gate, measure, data, means)
