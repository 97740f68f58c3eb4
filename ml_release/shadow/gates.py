"""Verdicts of the shadow gates, and the evidence tables of `shadow_report`.

Rates get exact (Clopper-Pearson) intervals: `fail` when the candidate is confidently worse
than the limit, `pass` when confidently within it, `inconclusive` in between. Without a
production model, the comparisons have nothing to compare with and pass with a note; the
candidate's own error rate is still judged.
"""

import math
from typing import Any

import numpy as np
from scipy import stats

from ml_release.evaluation.evidence import plan_slices
from ml_release.gates.judging import gate_result, gates_judged_by, judge_with
from ml_release.gates.result import GateResult, Verdict
from ml_release.gates.serving import LatencyVsBaselineParams
from ml_release.gates.shadow import AgreementRateParams, ErrorRateParams, FlipRateParams
from ml_release.metrics.calibration import log_loss
from ml_release.metrics.classification import roc_auc
from ml_release.serving.gates import p99_verdict
from ml_release.shadow.run import CANDIDATE, PRODUCTION, ShadowReport
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.stats.binomial import clopper_pearson

NO_BASELINE = "no production model to compare with yet"


def _rate_verdict(lower: float, upper: float, limit: float, higher_is_worse: bool) -> Verdict:
    if higher_is_worse:
        return (
            Verdict.FAIL
            if lower > limit
            else Verdict.PASS
            if upper <= limit
            else Verdict.INCONCLUSIVE
        )
    return (
        Verdict.FAIL if upper < limit else Verdict.PASS if lower >= limit else Verdict.INCONCLUSIVE
    )


def agreement(gate: GateSpec, report: ShadowReport) -> GateResult:
    """Label agreement on the requests both answered, against `min_agreement`."""
    params: AgreementRateParams = gate.params  # type: ignore[assignment]
    method = (
        "agreement of the most probable class; exact binomial interval"
        if report.task == "multiclass_classification"
        else "label agreement at the spec's threshold; exact binomial interval"
    )
    if report.production is None:
        return gate_result(gate, Verdict.PASS, NO_BASELINE, method)
    both = report.both_answered()
    n, agreed = int(both.sum()), int((~report.flips()[both]).sum())
    if n == 0:
        return gate_result(gate, Verdict.FAIL, "no request was answered by both models", method)
    low, high = (float(v) for v in clopper_pearson(agreed, n, params.confidence))
    verdict = _rate_verdict(low, high, params.min_agreement, higher_is_worse=False)
    return gate_result(
        gate,
        verdict,
        f"agreement {agreed / n:.2%} on {n:,} replayed requests, {params.confidence:.0%} "
        f"interval [{low:.2%}, {high:.2%}] vs minimum {params.min_agreement:.2%}",
        method,
        observed=agreed / n,
        threshold=params.min_agreement,
        interval=(low, high),
        direction="higher_is_better",
        support={"n": n, "agreed": agreed},
    )


def error_rate(gate: GateSpec, report: ShadowReport) -> GateResult:
    """The candidate's failed requests, against `max_error_rate`."""
    params: ErrorRateParams = gate.params  # type: ignore[assignment]
    candidate, production = report.candidate, report.production
    n, errors = len(candidate.status), candidate.error_count
    low, high = (float(v) for v in clopper_pearson(errors, n, params.confidence))
    verdict = _rate_verdict(low, high, params.max_error_rate, higher_is_worse=True)
    base = production.error_count / n if production else None
    return gate_result(
        gate,
        verdict,
        f"{errors} of {n:,} requests failed ({errors / n:.2%}, interval [{low:.2%}, {high:.2%}])"
        f" vs limit {params.max_error_rate:.2%}"
        + (f"; production failed {production.error_count}" if production else ""),
        "HTTP status other than 200, timeouts and refused connections; exact binomial interval",
        observed=errors / n,
        baseline=base,
        threshold=params.max_error_rate,
        interval=(low, high),
        support={"n": n, "errors": errors},
        examples=[{"answer": e} for e in candidate.errors],
    )


def latency(gate: GateSpec, report: ShadowReport) -> GateResult:
    """The p99 ratio's interval over the timed requests both answered; odd/even as the noise."""
    params: LatencyVsBaselineParams = gate.params  # type: ignore[assignment]
    rows = latency_rows(report)
    method = (
        "p99 ratio candidate / production over the replayed requests sent alone to both, "
        "paired by request; moving-block bootstrap interval"
    )
    candidate = report.candidate.latency_ms.copy()
    candidate[~report.candidate.ok] = np.nan
    answered = candidate[~np.isnan(candidate)]
    if len(answered) == 0:
        return gate_result(
            gate, Verdict.FAIL, "the candidate answered no request", method, rows=rows
        )
    p99 = float(np.percentile(answered, 99))
    if report.production is None:
        return gate_result(
            gate, Verdict.PASS, f"p99 {p99:.2f} ms; {NO_BASELINE}", method, rows=rows
        )
    production = report.production.latency_ms.copy()
    production[~report.production.ok] = np.nan
    times = production[~np.isnan(production)]  # in a batched replay only the timed sample
    odd, even = times[1::2], times[0::2]
    if min(len(odd), len(even)) == 0:
        return gate_result(gate, Verdict.FAIL, "production answered too few requests", method)
    noise = abs(math.log(np.percentile(odd, 99) / np.percentile(even, 99)))
    both = ~np.isnan(candidate) & ~np.isnan(production)
    return p99_verdict(
        gate,
        candidate[both],
        production[both],
        noise,
        params,
        method,
        rows,
        "odd and even production requests",
        "shadow.requests",
    )


def flip_rate(gate: GateSpec, report: ShadowReport) -> GateResult:
    """Per segment, the flip rate's interval against `max_flip_rate` (Bonferroni).

    Segments below `min_support` follow `small_segments` as in the evaluation gates: pooled
    per column into one more segment (default), the gate inconclusive while any exists
    (`block`), or listed as not judged (`warn`).
    """
    params: FlipRateParams = gate.params  # type: ignore[assignment]
    method = "label flips per segment; exact binomial intervals, Bonferroni across segments"
    if report.production is None:
        return gate_result(gate, Verdict.PASS, NO_BASELINE, method)
    both, flips = report.both_answered(), report.flips()

    def check(mask: np.ndarray) -> tuple[dict, str, bool]:
        n = int(mask.sum())
        small = n < params.min_support
        return {"n": n}, f"n < {params.min_support}" if small else "", small

    slices = [
        (column, str(value), both & (values == value))
        for column, values in report.segments.items()
        for value in sorted(set(values[both]))
    ]
    plan = plan_slices(slices, check, params.small_segments)
    judged = [("all", both)] if int(both.sum()) >= params.min_support else []
    judged += [(f"{column}={value}", mask) for column, value, mask, _ in plan.judged]
    confidence = 1 - (1 - params.confidence) / max(1, len(judged))
    rows = []
    for segment, mask in judged:
        row = _flip_row(segment, mask, flips)
        low, high = (float(v) for v in clopper_pearson(row["flips"], row["n"], confidence))
        verdict = _rate_verdict(low, high, params.max_flip_rate, higher_is_worse=True)
        status = {"pass": "ok", "fail": "fail", "inconclusive": "inconclusive"}[verdict.value]
        rows.append({**row, "low": low, "high": high, "status": status})
    skipped = [
        {"segment": f"{r['column']}={r['value']}", "n": r["n"], "status": r["status"],
         "reason": r["reason"]}
        for r in plan.skipped
    ]  # fmt: skip
    failing = [r for r in rows if r["status"] == "fail"]
    unsure = [r for r in rows if r["status"] == "inconclusive"]
    blocked_by_small = params.small_segments == "block" and plan.small > plan.pooled
    verdict = (
        Verdict.FAIL
        if failing
        else Verdict.INCONCLUSIVE
        if unsure or blocked_by_small or not rows
        else Verdict.PASS
    )
    worst = max(rows, key=lambda r: r["flip_rate"], default=None)
    if failing:
        summary = (
            "; ".join(
                f"{r['segment']} flips {r['flip_rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}]"
                for r in failing[:5]
            )
            + f" (limit {params.max_flip_rate:.1%})"
        )
    elif not rows:
        summary = f"no segment has {params.min_support} replayed requests"
    else:
        summary = (
            f"{len(rows)} segments judged; highest flip rate {worst['flip_rate']:.1%} "
            f"({worst['segment']}) vs limit {params.max_flip_rate:.1%}"
        )
    return gate_result(
        gate,
        verdict,
        summary + plan.note(params.small_segments),
        method,
        observed=worst["flip_rate"] if worst else None,
        threshold=params.max_flip_rate,
        rows=rows + skipped,
        support={"segments": len(rows) + len(skipped), "judged": len(rows)},
    )


def segment_table(report: ShadowReport) -> list[dict[str, Any]]:
    """Requests both answered, flips and flip rate per segment value (and overall)."""
    if report.production is None:
        return []
    both, flips = report.both_answered(), report.flips()
    rows = [_flip_row("all", both, flips)]
    for column, values in report.segments.items():
        for value in sorted(set(values[both])):
            rows.append(_flip_row(f"{column}={value}", both & (values == value), flips))
    return rows


def _flip_row(segment: str, mask: np.ndarray, flips: np.ndarray) -> dict[str, Any]:
    n, k = int(mask.sum()), int(flips[mask].sum())
    return {"segment": segment, "n": n, "flips": k, "flip_rate": k / n if n else float("nan")}


def latency_rows(report: ShadowReport) -> list[dict[str, Any]]:
    """Latency percentiles and errors per model on the replayed requests."""
    rows = []
    for role, answers in report.answers.items():
        times = answers.latency_ms[answers.ok]
        times = times[~np.isnan(times)]  # in a batched replay only the timed sample has one
        row: dict[str, Any] = {
            "model": role,
            "version": answers.version,
            "answered": int(answers.ok.sum()),
            "timed": len(times),
        }
        for q in (50, 95, 99):
            row[f"p{q}_ms"] = float(np.percentile(times, q)) if len(times) else float("nan")
        row["errors"] = answers.error_count
        rows.append(row)
    return rows


def score_shift(report: ShadowReport) -> dict[str, float]:
    """How the candidate's scores moved: mean and mean absolute change, and the KS distance."""
    if report.production is None:
        return {}
    both = report.both_answered()
    a = report.candidate.positive_score()[both]
    b = report.production.positive_score()[both]
    if len(a) == 0:
        return {}
    logged = report.requests.logged_score[both]
    fidelity = np.abs(b - logged)
    return {
        "mean_change": float(np.mean(a - b)),
        "mean_abs_change": float(np.mean(np.abs(a - b))),
        "ks_distance": float(stats.ks_2samp(a, b).statistic),
        "production_vs_logged_max_abs": float(np.nanmax(fidelity)) if len(fidelity) else 0.0,
    }


def labelled_quality(report: ShadowReport) -> list[dict[str, Any]]:
    """ROC-AUC and log loss of both models on the replayed requests whose label arrived.

    Binary classification only: the evaluation gates judge the other tasks' labelled requests.
    """
    if report.task != "binary_classification":
        return []
    labelled = ~np.isnan(report.requests.labels) & report.both_answered()
    y = report.requests.labels[labelled] == 1
    rows = []
    if len(y) == 0 or y.all() or not y.any():
        return rows
    for role in (CANDIDATE, PRODUCTION):
        if role not in report.answers:
            continue
        score = report.answers[role].positive_score()[labelled]
        rows.append(
            {
                "model": role,
                "labelled": int(labelled.sum()),
                "roc_auc": float(roc_auc(y, score)),
                "log_loss": float(log_loss(y, score)),
            }
        )
    return rows


JUDGES = {
    "shadow_agreement": agreement,
    "shadow_error_rate": error_rate,
    "shadow_latency_vs_baseline": latency,
    "segment_flip_rate": flip_rate,
}


def shadow_gates(spec: ReleaseSpec) -> list[GateSpec]:
    """The spec's shadow gates, in spec order."""
    return gates_judged_by(spec, JUDGES)


def judge(gate: GateSpec, report, spec: ReleaseSpec) -> GateResult:
    """One shadow gate's result."""
    return judge_with(JUDGES, gate, report, spec)
