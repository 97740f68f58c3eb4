"""Verdicts of the LLM gates from one `LLMReport`.

Quality scores are compared question by question (paired t interval of the mean difference),
globally and in every route with enough support; the intervals of that family are Bonferroni
intervals and the one-sided p-values are Holm-adjusted (`decide_segments`). Tokens and cost use
the same paired interval with a relative margin; p95 times use a paired bootstrap of the p95
difference. Without production (a first release) the comparisons pass with that noted, and
the absolute floors (`min_score`, structured failure rates) are the rules.
"""

import numpy as np
import pandas as pd

from ml_release.gates.judging import gate_result, gates_judged_by, judge_with
from ml_release.gates.llm import (
    QUALITY_METRICS,
    JudgeParams,
    LLMQualityParams,
    StructuredParams,
)
from ml_release.gates.result import GateResult, Verdict
from ml_release.llm.report import ALL, LLMReport
from ml_release.llm.usage import cost, p95_time, tokens
from ml_release.llm.verdicts import comparison_row, worst
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.stats.binomial import clopper_pearson
from ml_release.stats.multiple import simultaneous_confidence
from ml_release.stats.paired import paired_mean_delta
from ml_release.stats.verdict import decide, decide_segments


def _mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    comparison = paired_mean_delta(values, np.zeros_like(values), confidence)
    return comparison.low, comparison.high


def _floor(params: LLMQualityParams, values: np.ndarray) -> tuple[Verdict, str]:
    if params.min_score is None:
        return Verdict.PASS, ""
    low, high = _mean_interval(values, params.confidence)
    mean = float(values.mean())
    text = f"mean {mean:.3f}, interval [{low:.3f}, {high:.3f}] against the floor {params.min_score}"
    if high < params.min_score:
        return Verdict.FAIL, f"below the floor: {text}"
    if low >= params.min_score:
        return Verdict.PASS, f"above the floor: {text}"
    return Verdict.INCONCLUSIVE, f"cannot tell against the floor: {text}"


def pool_small_routes(
    groups: dict[str, tuple[np.ndarray, np.ndarray]], min_support: int, policy: str
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], str]:
    """Routes below `min_support`; with `pool`, one more group made of them all.

    Returns the groups (the pooled one added when it reaches `min_support`), the small routes
    and the pooled group's name ("" when none was judged).
    """
    small = [name for name, (c, _b) in groups.items() if name != ALL and len(c) < min_support]
    if policy != "pool" or not small:
        return groups, small, ""
    name = f"(small routes: {', '.join(small[:6])}{' and more' if len(small) > 6 else ''})"
    candidate = np.concatenate([groups[route][0] for route in small])
    production = np.concatenate([groups[route][1] for route in small])
    if len(candidate) < min_support:
        return groups, small, ""
    return {**groups, name: (candidate, production)}, small, name


def quality(gate: GateSpec, report: LLMReport) -> GateResult:
    """A [0, 1] score, candidate minus production on the same questions, global and per route."""
    params: LLMQualityParams = gate.params
    metric = QUALITY_METRICS[gate.name]
    candidate = report.candidate
    floor, floor_text = _floor(params, candidate[metric].to_numpy(float))
    method = f"paired t per question; Bonferroni/Holm over routes ({metric})"
    if report.production is None:
        verdict = floor
        summary = (
            f"{metric} {candidate[metric].mean():.3f}; no production prompt yet (first "
            "release): no comparison" + (f"; {floor_text}" if floor_text else "")
        )
        return gate_result(
            gate,
            verdict,
            summary,
            method,
            observed=float(candidate[metric].mean()),
            threshold=params.min_score,
            direction="higher_is_better",
            support={"questions": len(candidate)},
            rows=report.route_rows(metric),
        )
    groups, small, pooled = pool_small_routes(
        report.paired(metric, params.routes), max(2, params.min_support), params.small_routes
    )
    judged = [name for name, (c, _b) in groups.items() if len(c) >= max(2, params.min_support)]
    level = simultaneous_confidence(params.confidence, max(1, len(judged)))
    comparisons = {name: paired_mean_delta(c, b, level, metric) for name, (c, b) in groups.items()}
    decisions = decide_segments(
        comparisons,
        greater_is_better=True,
        max_drop=params.max_drop,
        min_support=max(2, params.min_support),
        family_confidence=params.confidence,
    )
    rows = [comparison_row(name, comparisons[name], decisions[name]) for name in comparisons]
    verdicts = [d.verdict for name, d in decisions.items() if name in judged]
    if ALL not in judged:  # too few questions to judge anything: never a pass
        verdicts.append(Verdict.INCONCLUSIVE)
    if small and params.small_routes == "block":
        verdicts.append(Verdict.INCONCLUSIVE)
    verdict = worst([*verdicts, floor])
    overall = comparisons[ALL]
    bad = [r["route"] for r in rows if r["verdict"] == "fail"]
    summary = decisions[ALL].reason + (f"; worse than allowed in: {', '.join(bad)}" if bad else "")
    if ALL not in judged:
        summary = (
            f"only {overall.n} paired questions, fewer than min_support "
            f"({max(2, params.min_support)}): nothing can be judged; " + summary
        )
    if small:
        how = {
            "pool": f"judged pooled in {pooled}" if pooled else "not judged, even pooled",
            "warn": "not judged (small_routes: warn)",
            "block": "not judged (small_routes: block, so the gate is inconclusive)",
        }[params.small_routes]
        summary += f"; {len(small)} routes below min_support {how}"
    if floor_text:
        summary += f"; {floor_text}"
    return gate_result(
        gate,
        verdict,
        summary,
        method,
        observed=overall.candidate,
        baseline=overall.baseline,
        threshold=-params.max_drop,
        direction="higher_is_better",
        interval=(overall.low, overall.high),
        support={"questions": overall.n, "routes_judged": len([n for n in judged if n != ALL])},
        rows=rows,
        examples=report.worst_answers(metric),
    )


def structured(gate: GateSpec, report: LLMReport) -> GateResult:
    """Share of structured answers that fail (not JSON, or not matching the schema)."""
    params: StructuredParams = gate.params
    column = "json_valid" if gate.name == "llm_json_validity" else "schema_valid"
    answers = report.candidate[report.candidate["structured"]]
    if answers.empty:
        return gate_result(
            gate,
            Verdict.INCONCLUSIVE,
            "the RAG set has no structured route (no question names a schema)",
            "count",
        )
    failed = int((~answers[column].astype(bool)).sum())
    n = len(answers)
    low, high = (float(x) for x in clopper_pearson(failed, n, params.confidence))
    rate = failed / n
    # Judged on the interval, like every gate: 0 failures in 20 answers still leaves a rate of
    # up to 17 % plausible, which a 5 % tolerance cannot pass.
    if high <= params.max_failure_rate:
        verdict = Verdict.PASS
    elif low > params.max_failure_rate:
        verdict = Verdict.FAIL
    else:
        verdict = Verdict.INCONCLUSIVE
    baseline = None
    if report.production is not None:
        prod = report.production[report.production["structured"]]
        baseline = float((~prod[column].astype(bool)).mean()) if len(prod) else None
    rows = []
    for route, part in answers.groupby("route", sort=False):
        bad = int((~part[column].astype(bool)).sum())
        rows.append(
            {
                "route": route,
                "answers": len(part),
                "failed": bad,
                "rate": bad / len(part),
                "status": "ok" if bad == 0 else "failing",
            }
        )
    what = "are not valid JSON" if column == "json_valid" else "do not match the schema"
    examples = [
        {"question_id": r.question_id, "answer": r.answer[:300], "why": r.structured_problem}
        for r in answers[~answers[column].astype(bool)].head(10).itertuples()
    ]
    return gate_result(
        gate,
        verdict,
        f"{failed} of {n} structured answers {what} ({rate:.1%}; exact "
        f"{params.confidence:.0%} interval [{low:.1%}, {high:.1%}]; allowed "
        f"{params.max_failure_rate:.1%}"
        + (": too few answers to tell" if verdict is Verdict.INCONCLUSIVE else "")
        + ")",
        "count, Clopper-Pearson interval",
        observed=rate,
        baseline=baseline,
        threshold=params.max_failure_rate,
        interval=(low, high),
        support={"answers": n, "failed": failed},
        rows=rows,
        examples=examples,
    )


def judge_faithfulness(gate: GateSpec, report: LLMReport) -> GateResult:
    """Faithfulness (ragas) judged k times per answer; paired on per-question means."""
    params: JudgeParams = gate.params
    scores = report.judge
    if scores is None:
        raise ValueError(
            "llm_judge_faithfulness needs a judge endpoint: configure the llm_client resource "
            "with a judge model (docs/llm.md), or remove the gate from the spec"
        )
    c = scores.candidate.mean(axis=1)
    runs = scores.candidate.mean(axis=0)
    spread = f"run means {', '.join(f'{r:.3f}' for r in runs)}"
    if scores.production is None:
        return gate_result(
            gate,
            Verdict.PASS,
            f"faithfulness {c.mean():.3f} ({spread}); no production prompt yet",
            f"ragas Faithfulness x{scores.candidate.shape[1]}",
            observed=float(c.mean()),
        )
    b = scores.production.mean(axis=1)
    comparison = paired_mean_delta(c, b, params.confidence, "faithfulness")
    decision = decide(comparison, greater_is_better=True, max_drop=params.max_drop)
    return gate_result(
        gate,
        decision.verdict,
        f"{decision.reason} ({spread})",
        f"ragas Faithfulness x{scores.candidate.shape[1]} per answer; paired t on the means",
        observed=comparison.candidate,
        baseline=comparison.baseline,
        threshold=-params.max_drop,
        direction="higher_is_better",
        interval=(comparison.low, comparison.high),
        support={"questions": comparison.n, "runs": int(scores.candidate.shape[1])},
        rows=[{"run": i + 1, "candidate_mean": float(r)} for i, r in enumerate(runs)],
    )


JUDGES = {
    **{name: quality for name in QUALITY_METRICS},
    "llm_json_validity": structured,
    "llm_schema_conformance": structured,
    "llm_tokens_vs_baseline": tokens,
    "llm_cost_vs_baseline": cost,
    "llm_ttft_p95_vs_baseline": p95_time,
    "llm_latency_p95_vs_baseline": p95_time,
    "llm_judge_faithfulness": judge_faithfulness,
}


def llm_gates(spec: ReleaseSpec) -> list[GateSpec]:
    """The spec's LLM gates, in spec order."""
    return gates_judged_by(spec, JUDGES)


def judge(gate: GateSpec, report: LLMReport, spec: ReleaseSpec) -> GateResult:
    """One LLM gate's result."""
    return judge_with(JUDGES, gate, report, spec)


def as_frame(results: list[GateResult]) -> pd.DataFrame:
    """Gate, verdict and summary per result."""
    return pd.DataFrame(
        [{"gate": r.gate, "verdict": r.verdict.value, "summary": r.summary} for r in results]
    )
