"""The model-quality gates, judged from paired evaluation data.

Every verdict follows DESIGN §6: `fail` only when the data show, at the configured confidence,
a drop beyond the tolerated margin; `pass` when they show the drop is within it; otherwise
`inconclusive`, with the reason. Segment gates control false alarms across segments with
Bonferroni intervals (Holm-adjusted p-values reported). Without a production model the global
comparisons are against a trivial constant model, which the candidate must beat.
"""

import numpy as np

from ml_release.evaluation import evidence
from ml_release.evaluation.compare import compare
from ml_release.evaluation.data import EvalSet
from ml_release.gates.model_quality import (
    METRIC_DIRECTIONS,
    CalibrationParams,
    FloorParams,
    SegmentVsBaselineParams,
    ValidityParams,
    VsBaselineParams,
)
from ml_release.gates.result import GateResult, Verdict
from ml_release.metrics import compute_metrics
from ml_release.spec import EvaluationSpec, GateSpec
from ml_release.stats import Decision, decide


def _invalid(gate: GateSpec, data: EvalSet) -> GateResult | None:
    if len(data.invalid):
        return GateResult(
            gate.name,
            data.name,
            Verdict.INCONCLUSIVE,
            f"{len(data.invalid)} candidate scores are not probabilities "
            "(see valid_predictions): no metric is computed on them",
            "n/a",
        )
    return None


def beat_trivial(comparison, higher: bool, trivial: str = "constant"):
    """Without production: the candidate must be confidently better than a trivial model."""
    better = comparison.low > 0 if higher else comparison.high < 0
    worse = comparison.high <= 0 if higher else comparison.low >= 0
    verdict = Verdict.PASS if better else Verdict.FAIL if worse else Verdict.INCONCLUSIVE
    reason = {
        Verdict.PASS: f"better than a trivial {trivial} model, as a first release must be",
        Verdict.FAIL: f"not better than a trivial {trivial} model: a first release must be",
        Verdict.INCONCLUSIVE: f"cannot be told from a trivial {trivial} model yet: the interval "
        "contains 0, and a first release must be better",
    }[verdict]
    return Decision(verdict, reason, evidence.direction(higher))


def vs_baseline(gate: GateSpec, metric: str, data: EvalSet, settings: EvaluationSpec):
    """`<metric>_vs_baseline`: the global paired comparison."""
    params: VsBaselineParams = gate.params  # type: ignore[assignment]
    higher = METRIC_DIRECTIONS[metric]
    if (invalid := _invalid(gate, data)) is not None:
        return invalid
    comparison = compare(
        metric,
        data.y,
        data.candidate,
        data.baseline,
        confidence=params.confidence,
        threshold=settings.threshold,
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
        little_above=settings.little_bootstrap_above,
    )
    if data.trivial_baseline:
        decision = beat_trivial(comparison, higher)
    else:
        decision = evidence.decide_vs_baseline(comparison, params, higher, len(data.y))
    return evidence.comparison_result(
        gate.name,
        data.name,
        comparison,
        decision,
        _support(data.y),
        f"{metric} {comparison.delta:+.4f} [{comparison.low:+.4f}, {comparison.high:+.4f}], "
        f"n={len(data.y):,}: {decision.reason}",
        f"{comparison.method}, {params.confidence:.0%} interval",
        threshold=evidence.margin(params),
        direction=evidence.direction(higher),
        support={"rows": len(data.y), "positives": int(data.y.sum())},
    )


def segment_vs_baseline(
    gate: GateSpec, metric: str, data: EvalSet, settings: EvaluationSpec, segments: list[str]
):
    """`segment_<metric>_vs_baseline`: every segment, false alarms controlled across them."""
    params: SegmentVsBaselineParams = gate.params  # type: ignore[assignment]
    higher = METRIC_DIRECTIONS[metric]
    if (invalid := _invalid(gate, data)) is not None:
        return invalid
    if data.trivial_baseline:
        return evidence.no_production(gate.name, data.name, "trivial-model")

    def check(mask: np.ndarray) -> tuple[dict, str, bool]:
        y = data.y[mask]
        if len(y) < params.min_support:
            return _support(y), f"{len(y)} rows, below min_support={params.min_support}", True
        values = [
            compute_metrics(y, scores[mask], threshold=settings.threshold, names=[metric])[metric]
            for scores in (data.candidate, data.baseline)
        ]
        return _support(y), values[0].undefined_reason or values[1].undefined_reason or "", False

    def compare_slice(mask: np.ndarray, confidence: float):
        return compare(
            metric,
            data.y[mask],
            data.candidate[mask],
            data.baseline[mask],
            confidence=confidence,
            threshold=settings.threshold,
            resamples=settings.bootstrap_resamples,
            seed=settings.seed,
            little_above=settings.little_bootstrap_above,
        )

    slices = evidence.segment_slices(data.segments, params.segments or segments, params.crossings)
    plan = evidence.plan_slices(slices, check, params.small_segments)
    rows, confidence = evidence.judge_slices(plan.judged, compare_slice, params, higher)
    summary = evidence.named_segments(rows, lambda r: f"n={r['n']:,}") or (
        f"all {len(rows)} judged segments within the margin" if rows else "no segment judged"
    )
    return evidence.segment_result(
        gate.name,
        data.name,
        rows,
        plan,
        summary,
        f"per-segment {rows[0]['method'] if rows else 'comparison'} at {confidence:.2%} each "
        f"({params.multiplicity} over {len(rows)} segments)",
        params.small_segments,
        threshold=evidence.margin(params),
        direction=evidence.direction(higher),
    )


def _support(y: np.ndarray) -> dict[str, int]:
    return {"n": len(y), "positives": int(y.sum())}


def floor(gate: GateSpec, metric: str, data: EvalSet, settings: EvaluationSpec):
    """`min_<metric>` / `max_<metric>`: an absolute bound on the candidate."""
    params: FloorParams = gate.params  # type: ignore[assignment]
    higher = METRIC_DIRECTIONS[metric]
    if (invalid := _invalid(gate, data)) is not None:
        return invalid
    value = compute_metrics(
        data.y,
        data.candidate,
        threshold=settings.threshold,
        min_support=params.min_support,
        names=[metric],
    )[metric]
    if value.value is None:
        verdict, summary = Verdict.INCONCLUSIVE, f"{metric} undefined: {value.undefined_reason}"
    else:
        ok = value.value >= params.threshold if higher else value.value <= params.threshold
        verdict = Verdict.PASS if ok else Verdict.FAIL
        bound = "floor" if higher else "ceiling"
        summary = f"{metric} {value.value:.4f} vs {bound} {params.threshold}"
    return GateResult(
        gate.name,
        data.name,
        verdict,
        summary,
        "point estimate on all rows",
        observed=value.value,
        threshold=params.threshold,
        direction=evidence.direction(higher),
        support={"rows": value.support.n, "positives": value.support.positives},
    )


def calibration(gate: GateSpec, data: EvalSet, settings: EvaluationSpec):
    """`calibration`: ECE under a ceiling and no worse than production beyond a margin."""
    params: CalibrationParams = gate.params  # type: ignore[assignment]
    if (invalid := _invalid(gate, data)) is not None:
        return invalid
    comparison = compare(
        "ece",
        data.y,
        data.candidate,
        data.baseline,
        confidence=params.confidence,
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
        little_above=settings.little_bootstrap_above,
    )
    ceiling = Verdict.PASS if comparison.candidate <= params.max_ece else Verdict.FAIL
    reasons = [f"ECE {comparison.candidate:.4f} vs ceiling {params.max_ece}"]
    verdict = ceiling
    if not data.trivial_baseline:
        decision = decide(
            comparison,
            greater_is_better=False,
            max_drop=params.max_increase,
            min_support=params.min_support,
            support=len(data.y),
        )
        reasons.append(f"vs production: {decision.reason}")
        order = [Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS]
        verdict = min(ceiling, decision.verdict, key=order.index)
    return GateResult(
        gate.name,
        data.name,
        verdict,
        "; ".join(reasons),
        f"ECE, 10 equal-width bins; {comparison.method}",
        observed=comparison.candidate,
        baseline=comparison.baseline,
        threshold=params.max_ece,
        interval=(comparison.low, comparison.high),
        support={"rows": len(data.y)},
        draws=evidence.draw_count(comparison),
    )


def valid_predictions(gate: GateSpec, sets: dict[str, EvalSet]) -> GateResult:
    """`valid_predictions`: every candidate score is a finite probability."""
    params: ValidityParams = gate.params  # type: ignore[assignment]
    examples, total = [], 0
    for data in sets.values():
        total += len(data.invalid)
        examples += [
            {"eval_set": data.name, "row_id": str(data.row_ids[i]), "score": str(data.candidate[i])}
            for i in data.invalid
        ]
    verdict = Verdict.FAIL if total else Verdict.PASS
    summary = (
        f"{total} scores are not finite probabilities, e.g. rows "
        + ", ".join(e["row_id"] for e in examples[:5])
        if total
        else "every score is a finite probability"
    )
    rows = sum(len(d.y) for d in sets.values())
    return GateResult(
        gate.name,
        "all",
        verdict,
        summary,
        "finite and within [0, 1]",
        observed=float(total),
        threshold=0.0,
        baseline=0.0,
        support={"rows": rows},
        examples=examples[: params.examples],
    )
