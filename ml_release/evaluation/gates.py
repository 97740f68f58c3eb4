"""The model-quality gates, judged from paired evaluation data.

Every verdict follows DESIGN §6: `fail` only when the data show, at the configured confidence,
a drop beyond the tolerated margin; `pass` when they show the drop is within it; otherwise
`inconclusive`, with the reason. Segment gates control false alarms across segments with
Bonferroni intervals (Holm-adjusted p-values reported). Without a production model the global
comparisons are against a trivial constant model, which the candidate must beat.
"""

import numpy as np

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
from ml_release.metrics import CROSS, compute_metrics
from ml_release.spec import EvaluationSpec, GateSpec
from ml_release.stats import Decision, decide, decide_segments, simultaneous_confidence

ALL = "(all)"


def _direction(higher: bool) -> str:
    return "higher_is_better" if higher else "lower_is_better"


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


def _slice_row(column, value, y, comparison, decision) -> dict:
    return {
        "column": column,
        "value": value,
        "n": len(y),
        "positives": int(y.sum()),
        "candidate": comparison.candidate,
        "baseline": comparison.baseline,
        "delta": comparison.delta,
        "low": comparison.low,
        "high": comparison.high,
        "method": comparison.method,
        "verdict": decision.verdict.value,
        "status": "ok" if decision.verdict is Verdict.PASS else decision.verdict.value,
        "reason": decision.reason,
    }


def _beat_trivial(comparison, higher: bool):
    """Without production: the candidate must be confidently better than a constant model."""
    better = comparison.low > 0 if higher else comparison.high < 0
    worse = comparison.high <= 0 if higher else comparison.low >= 0
    verdict = Verdict.PASS if better else Verdict.FAIL if worse else Verdict.INCONCLUSIVE
    reason = (
        f"must beat a trivial constant model: delta {comparison.delta:+.4f} "
        f"[{comparison.low:+.4f}, {comparison.high:+.4f}]"
    )
    return Decision(verdict, reason, _direction(higher))


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
    )
    if data.trivial_baseline:
        decision = _beat_trivial(comparison, higher)
    else:
        decision = decide(
            comparison,
            greater_is_better=higher,
            max_drop=params.max_drop,
            max_relative_drop=params.max_relative_drop,
            min_support=params.min_support,
            support=len(data.y),
        )
    row = _slice_row(ALL, ALL, data.y, comparison, decision)
    return GateResult(
        gate.name,
        data.name,
        decision.verdict,
        f"{metric} {comparison.delta:+.4f} [{comparison.low:+.4f}, {comparison.high:+.4f}], "
        f"n={len(data.y):,}: {decision.reason}",
        f"{comparison.method}, {params.confidence:.0%} interval",
        observed=comparison.candidate,
        baseline=comparison.baseline,
        threshold=params.max_drop if params.max_drop is not None else params.max_relative_drop,
        direction=_direction(higher),
        interval=(comparison.low, comparison.high),
        support={"rows": len(data.y), "positives": int(data.y.sum())},
        rows=[row],
    )


def segment_slices(data: EvalSet, columns: list[str], crossings: bool):
    """(column, value, row mask) for every segment value, and crossings when asked."""
    for column in columns:
        values = data.segments[column]
        for value in np.unique(values):
            yield column, str(value), values == value
    if crossings:
        for i, first in enumerate(columns):
            for second in columns[i + 1 :]:
                pairs = np.char.add(
                    np.char.add(data.segments[first].astype(str), CROSS),
                    data.segments[second].astype(str),
                )
                for value in np.unique(pairs):
                    yield f"{first}{CROSS}{second}", str(value), pairs == value


def segment_vs_baseline(
    gate: GateSpec, metric: str, data: EvalSet, settings: EvaluationSpec, segments: list[str]
):
    """`segment_<metric>_vs_baseline`: every segment, false alarms controlled across them."""
    params: SegmentVsBaselineParams = gate.params  # type: ignore[assignment]
    higher = METRIC_DIRECTIONS[metric]
    if (invalid := _invalid(gate, data)) is not None:
        return invalid
    if data.trivial_baseline:
        return GateResult(
            gate.name,
            data.name,
            Verdict.PASS,
            "no production model yet: segment comparisons do not apply "
            "(first release: absolute gates and the trivial-model check)",
            "n/a",
        )
    slices, skipped = [], []
    for column, value, mask in segment_slices(data, params.segments or segments, params.crossings):
        y = data.y[mask]
        point = compute_metrics(
            y,
            data.candidate[mask],
            threshold=settings.threshold,
            min_support=params.min_support,
            names=[metric],
        )[metric]
        base = compute_metrics(
            y,
            data.baseline[mask],
            threshold=settings.threshold,
            min_support=params.min_support,
            names=[metric],
        )[metric]
        reason = point.undefined_reason or base.undefined_reason
        if reason:
            skipped.append(
                {
                    "column": column,
                    "value": value,
                    "n": int(mask.sum()),
                    "positives": int(y.sum()),
                    "status": "not judged",
                    "reason": reason,
                }
            )
        else:
            slices.append((column, value, mask))
    confidence = simultaneous_confidence(
        params.confidence,
        max(1, len(slices)),
        "none" if params.multiplicity == "none" else "bonferroni",
    )
    comparisons = {
        f"{c}={v}": compare(
            metric,
            data.y[m],
            data.candidate[m],
            data.baseline[m],
            confidence=confidence,
            threshold=settings.threshold,
            resamples=settings.bootstrap_resamples,
            seed=settings.seed,
        )
        for c, v, m in slices
    }
    decisions = decide_segments(
        comparisons,
        greater_is_better=higher,
        max_drop=params.max_drop,
        max_relative_drop=params.max_relative_drop,
        family_confidence=params.confidence if params.multiplicity != "none" else confidence,
    )
    rows = [
        _slice_row(c, v, data.y[m], comparisons[f"{c}={v}"], decisions[f"{c}={v}"])
        for c, v, m in slices
    ]
    rows.sort(
        key=lambda r: (
            r["verdict"] != "fail",
            r["verdict"] != "inconclusive",
            r["delta"] if higher else -r["delta"],
        )
    )
    verdicts = {r["verdict"] for r in rows}
    verdict = (
        Verdict.FAIL
        if "fail" in verdicts
        else Verdict.INCONCLUSIVE
        if "inconclusive" in verdicts or not rows
        else Verdict.PASS
    )
    named = [r for r in rows if r["verdict"] != "pass"][:5]
    summary = (
        "; ".join(
            f"segment {r['column']}={r['value']} {r['delta']:+.3f} [{r['low']:+.3f}, "
            f"{r['high']:+.3f}], n={r['n']:,}: {r['verdict']}"
            for r in named
        )
        or f"all {len(rows)} judged segments within the margin"
    )
    if skipped:
        summary += f" ({len(skipped)} segments not judged: too small or one class)"
    worst = rows[0] if rows else {}
    return GateResult(
        gate.name,
        data.name,
        verdict,
        summary,
        f"per-segment {rows[0]['method'] if rows else 'comparison'} at {confidence:.2%} each "
        f"({params.multiplicity} over {len(slices)} segments)",
        observed=worst.get("candidate"),
        baseline=worst.get("baseline"),
        threshold=params.max_drop if params.max_drop is not None else params.max_relative_drop,
        direction=_direction(higher),
        interval=(worst["low"], worst["high"]) if worst else None,
        support={"segments": len(slices), "not_judged": len(skipped)},
        rows=rows + skipped,
    )


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
        direction=_direction(higher),
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
