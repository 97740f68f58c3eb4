"""Verdicts of the serving gates from one `ServingReport`.

Every gate fails when the candidate did not load or did not answer: a server that cannot serve
is never a pass. Gates comparing with production pass with a note when no production model
exists yet (the absolute limits still apply). The p99 latency gate judges an interval of the
p99 ratio from the interleaved requests (`ml_release.stats.quantile`), like every other
comparison gate: a verdict the measurement cannot support is `inconclusive`.
"""

import math
from typing import Any

import numpy as np

from ml_release.gates.judging import gate_result, gates_judged_by, judge_with
from ml_release.gates.result import GateResult, Verdict
from ml_release.gates.serving import (
    AgreementParams,
    LatencyVsBaselineParams,
    LoadTimeParams,
    MemoryParams,
)
from ml_release.serving.measure import ServerMeasurement, paired_latencies
from ml_release.serving.run import ServingReport
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.stats.quantile import percentile_ratio
from ml_release.stats.verdict import decide

_PERCENTILES = (50, 95, 99)
MIN_PAIRED = 20  # requests both servers answered, for a p99 interval at all


def _not_serving(gate: GateSpec, candidate: ServerMeasurement) -> GateResult | None:
    if candidate.load_error:
        return gate_result(
            gate,
            Verdict.FAIL,
            f"the candidate did not load in the serving runtime: {candidate.load_error[:1500]}",
            "server start",
        )
    if candidate.error_count:
        return gate_result(
            gate,
            Verdict.FAIL,
            f"the candidate refused {candidate.error_count} requests that production answers; "
            f"first: {candidate.errors[0]}",
            "requests from the request contract",
            examples=[{"answer": e} for e in candidate.errors],
        )
    return None


def latency_rows(report: ServingReport) -> list[dict[str, Any]]:
    """p50/p95/p99/mean single-request latency and load/memory per server."""
    rows = []
    for role, m in report.measurements.items():
        row: dict[str, Any] = {
            "server": role,
            "version": m.version,
            "answered": len(m.latencies_ms),
        }
        for q in _PERCENTILES:
            row[f"p{q}_ms"] = m.percentile(q)
        row["mean_ms"] = float(np.mean(m.latencies_ms)) if m.latencies_ms else float("nan")
        row["load_s"] = m.load_seconds
        row["peak_rss_mb"] = m.peak_rss_mb
        rows.append(row)
    return rows


def load_time(gate: GateSpec, report: ServingReport) -> GateResult:
    """Load time under the ceiling."""
    params: LoadTimeParams = gate.params  # type: ignore[assignment]
    candidate = report.candidate
    if candidate.load_error:
        return _not_serving(gate, candidate)  # type: ignore[return-value]
    production = report.production
    verdict = Verdict.PASS if candidate.load_seconds <= params.max_seconds else Verdict.FAIL
    return gate_result(
        gate,
        verdict,
        f"loaded in {candidate.load_seconds:.2f} s (limit {params.max_seconds:g} s)"
        + (
            f"; production {production.load_seconds:.2f} s (started beside its replica)"
            if production
            else ""
        ),
        "process start to /v2/models/<name>/ready; the candidate starts alone",
        observed=candidate.load_seconds,
        baseline=production.load_seconds if production else None,
        threshold=params.max_seconds,
        rows=latency_rows(report),
    )


def memory(gate: GateSpec, report: ServingReport) -> GateResult:
    """Peak RSS under the ceiling and within the tolerated increase over production."""
    params: MemoryParams = gate.params  # type: ignore[assignment]
    candidate, production, replica = report.candidate, report.production, report.replica
    if candidate.load_error:
        return _not_serving(gate, candidate)  # type: ignore[return-value]
    problems, allowed = [], None
    if params.max_mb is not None and candidate.peak_rss_mb > params.max_mb:
        problems.append(f"above the ceiling of {params.max_mb:g} MiB")
    if production is not None and replica is not None:
        noise = abs(production.peak_rss_mb - replica.peak_rss_mb)
        allowed = production.peak_rss_mb * (1 + params.max_increase) + noise
        if candidate.peak_rss_mb > allowed:
            problems.append(
                f"above production's {production.peak_rss_mb:.0f} MiB by more than "
                f"{params.max_increase:.0%} plus the two production servers' difference "
                f"({noise:.0f} MiB)"
            )
    summary = f"peak RSS {candidate.peak_rss_mb:.0f} MiB" + (
        f" ({'; '.join(problems)})"
        if problems
        else (f", allowed {allowed:.0f} MiB" if allowed else "")
    )
    return gate_result(
        gate,
        Verdict.FAIL if problems else Verdict.PASS,
        summary,
        "peak resident memory (VmHWM) of the server process tree",
        observed=candidate.peak_rss_mb,
        baseline=production.peak_rss_mb if production else None,
        threshold=allowed if allowed is not None else params.max_mb,
        rows=latency_rows(report),
    )


def latency_vs_baseline(gate: GateSpec, report: ServingReport) -> GateResult:
    """The p99 ratio's interval, from interleaved requests, against 1 + max_increase."""
    params: LatencyVsBaselineParams = gate.params  # type: ignore[assignment]
    candidate, production, replica = report.candidate, report.production, report.replica
    failed = _not_serving(gate, candidate)
    if failed:
        return failed
    p99 = candidate.percentile(99)
    rows = latency_rows(report)
    method = (
        "p99 ratio candidate / production over interleaved single requests, paired by step; "
        "moving-block bootstrap interval"
    )
    if production is None or replica is None:
        return gate_result(
            gate,
            Verdict.PASS,
            f"p99 {p99:.2f} ms; no production model to compare with yet",
            method,
            observed=p99,
            rows=rows,
        )
    base, twin = production.percentile(99), replica.percentile(99)
    noise = abs(math.log(twin / base))
    c, b = paired_latencies(candidate, production)
    return p99_verdict(gate, c, b, noise, params, method, rows, "two production servers")


def p99_verdict(
    gate: GateSpec,
    candidate_ms: np.ndarray,
    production_ms: np.ndarray,
    noise: float,
    params: LatencyVsBaselineParams,
    method: str,
    rows: list[dict[str, Any]],
    twins: str,
    setting: str = "serving.requests",
) -> GateResult:
    """Judge the interval of p99(candidate) / p99(production) - 1 against `max_increase`.

    `candidate_ms` and `production_ms` are paired: request k of each was sent at the same
    step. `fail` when the whole interval lies above `max_increase`, `pass` when it lies at or
    below it, `inconclusive` otherwise. `noise` is |log| of the ratio of production's p99
    measured twice (`twins`: two servers, or odd and even requests): beyond `max_noise` the
    measurement itself is suspect and the gate is inconclusive. An inconclusive verdict names
    the spec `setting` that sends more requests.
    """
    if len(candidate_ms) < MIN_PAIRED:
        return gate_result(
            gate,
            Verdict.INCONCLUSIVE,
            f"only {len(candidate_ms)} requests answered by both servers, fewer than "
            f"{MIN_PAIRED}: send more requests",
            method,
            rows=rows,
        )
    comparison = percentile_ratio(candidate_ms, production_ms, 99, params.confidence)
    decision = decide(comparison, greater_is_better=False, max_drop=params.max_increase)
    common = {
        "observed": comparison.candidate,
        "baseline": comparison.baseline,
        "threshold": params.max_increase,
        "interval": (comparison.low, comparison.high),
        "support": {"paired_requests": comparison.n},
        "draws": len(comparison.draws),
        "rows": rows,
    }
    ratio = (
        f"p99 {comparison.candidate:.2f} ms vs production {comparison.baseline:.2f} ms "
        f"({comparison.delta:+.1%}; {params.confidence:.0%} interval [{comparison.low:+.1%}, "
        f"{comparison.high:+.1%}], tolerated +{params.max_increase:.0%})"
    )
    if noise > math.log1p(params.max_noise):
        return gate_result(
            gate,
            Verdict.INCONCLUSIVE,
            f"the {twins}' p99 differ by {math.expm1(noise):.0%} (more than max_noise "
            f"{params.max_noise:.0%}): too noisy to judge; send more requests or measure on a "
            f"quieter machine; {ratio}",
            f"{method} ({comparison.method})",
            **common,
        )
    says = {
        Verdict.FAIL: "slower than tolerated",
        Verdict.PASS: "within the tolerated increase",
        Verdict.INCONCLUSIVE: "cannot tell: the interval straddles the tolerated increase; "
        f"send more requests ({setting})",
    }[decision.verdict]
    return gate_result(
        gate, decision.verdict, f"{says}: {ratio}", f"{method} ({comparison.method})", **common
    )


def agreement(gate: GateSpec, report: ServingReport) -> GateResult:
    """The candidate's one-by-one answers equal its batch answers within the tolerance."""
    params: AgreementParams = gate.params  # type: ignore[assignment]
    candidate = report.candidate
    failed = _not_serving(gate, candidate)
    if failed:
        return failed
    single, batch = candidate.single_proba, candidate.batch_proba
    method = "max |p_single - p_batch| per row over the single-request rows"
    if single is None or batch is None or single.shape != batch.shape:
        return gate_result(
            gate,
            Verdict.FAIL,
            "the batch answer does not have one row of probabilities per request row "
            f"(single {None if single is None else single.shape}, batch "
            f"{None if batch is None else batch.shape})",
            method,
        )
    diff = np.nanmax(np.abs(single - batch), axis=1, initial=0.0)
    diff[np.isnan(single).any(axis=1) != np.isnan(batch).any(axis=1)] = np.inf
    bad = np.flatnonzero(diff > params.tolerance)
    examples = [
        {"row": int(i), "single": single[i].tolist(), "batch": batch[i].tolist()}
        for i in bad[: params.examples]
    ]
    worst = float(diff.max()) if len(diff) else 0.0
    return gate_result(
        gate,
        Verdict.FAIL if len(bad) else Verdict.PASS,
        f"{len(bad)} of {len(diff)} rows differ by more than {params.tolerance:g} between "
        f"single requests and one batch (largest difference {worst:.3g})",
        method,
        observed=worst,
        threshold=params.tolerance,
        support={"rows": len(diff), "disagreeing": len(bad)},
        examples=examples,
    )


def _schema_fields(m: ServerMeasurement) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, schema in sorted(m.schema.items()):
        fields[f"output {name}.datatype"] = schema["datatype"]
        fields[f"output {name}.shape"] = schema["shape"]
    fields["class labels"] = m.runtime.get("classes")
    fields["probability columns"] = m.probability_columns
    return fields


def output_schema(gate: GateSpec, report: ServingReport) -> GateResult:
    """Every field of the candidate's response schema equals production's."""
    candidate, production = report.candidate, report.production
    failed = _not_serving(gate, candidate)
    if failed:
        return failed
    method = "V2 response outputs and model metadata compared field by field"
    if production is None:
        return gate_result(gate, Verdict.PASS, "no production model to compare with yet", method)
    ours, theirs = _schema_fields(candidate), _schema_fields(production)
    rows = []
    for key in sorted({*ours, *theirs}):
        a, b = theirs.get(key, "(absent)"), ours.get(key, "(absent)")
        rows.append(
            {
                "field": key,
                "production": str(a),
                "candidate": str(b),
                "status": "ok" if a == b else "changed",
            }
        )
    changed = [r["field"] for r in rows if r["status"] != "ok"]
    return gate_result(
        gate,
        Verdict.FAIL if changed else Verdict.PASS,
        f"{len(changed)} field(s) differ from production: {', '.join(changed)}"
        if changed
        else f"all {len(rows)} fields equal production's",
        method,
        rows=rows,
        support={"fields": len(rows), "changed": len(changed)},
    )


def _major_minor(version: str, parts: int) -> tuple[str, ...]:
    return tuple(version.split(".")[:parts])


# How much of each version must match: scikit-learn does not support loading a model written by
# another release at all; skops and Python must agree on minor, numpy on major version.
VERSION_PARTS = {"scikit_learn": 3, "skops": 2, "numpy": 1, "python": 2}


def compatibility(gate: GateSpec, report: ServingReport) -> GateResult:
    """Manifest versions against the runtime's, load warnings, features against the contract."""
    candidate, manifest = report.candidate, report.manifest
    rows: list[dict[str, Any]] = []
    written = manifest.library_versions.model_dump()
    runtime = candidate.runtime.get("runtime_versions") or {}
    for library, parts in VERSION_PARTS.items():
        have = runtime.get(library, "(unknown: the server did not load)")
        same = _major_minor(written[library], parts) == _major_minor(str(have), parts)
        rows.append(
            {
                "check": f"{library} version",
                "artifact": written[library],
                "runtime": have,
                "status": "ok" if same else "mismatch",
            }
        )
    for warning in candidate.runtime.get("load_warnings") or []:
        rows.append(
            {"check": "load warning", "artifact": "", "runtime": warning, "status": "warning"}
        )
    if candidate.load_error:
        rows.append(
            {
                "check": "load",
                "artifact": "",
                "runtime": candidate.load_error[:500],
                "status": "failed",
            }
        )
    for feature in manifest.features:
        sent = report.contract.get(feature.name)
        status = "ok" if sent == feature.dtype else ("not sent" if sent is None else "other kind")
        rows.append(
            {
                "check": f"feature {feature.name}",
                "artifact": feature.dtype,
                "runtime": sent or "(absent)",
                "status": status,
            }
        )
    bad = [r for r in rows if r["status"] != "ok"]
    return gate_result(
        gate,
        Verdict.FAIL if bad else Verdict.PASS,
        "; ".join(
            f"{r['check']}: {r['status']} ({r['artifact']} vs {r['runtime']})" for r in bad[:6]
        )
        if bad
        else "library versions match the runtime, loading raised no warning, and the request "
        "contract sends every feature the model expects",
        "manifest against the runtime's reported versions and the feature code's REQUIRED_COLUMNS",
        rows=rows,
        support={"checks": len(rows), "problems": len(bad)},
    )


JUDGES = {
    "serving_load_time": load_time,
    "serving_memory": memory,
    "serving_latency_p99_vs_baseline": latency_vs_baseline,
    "batch_single_agreement": agreement,
    "output_schema_stable": output_schema,
    "runtime_compatible": compatibility,
}


def serving_gates(spec: ReleaseSpec) -> list[GateSpec]:
    """The spec's serving gates, in spec order."""
    return gates_judged_by(spec, JUDGES)


def judge(gate: GateSpec, report, spec: ReleaseSpec) -> GateResult:
    """One serving gate's result."""
    return judge_with(JUDGES, gate, report, spec)
