"""Verdicts of the cost and speed gates: tokens, estimated cost, p95 TTFT and latency.

Tokens and cost: paired t interval of the per-question difference with a margin relative to
production's mean. p95 times: paired bootstrap of the p95 difference over the same questions.
Without production (a first release) they pass with that noted.
"""

import math

import numpy as np

from ml_release.gates.judging import gate_result
from ml_release.gates.llm import IncreaseParams, TokensParams
from ml_release.gates.result import GateResult, Verdict
from ml_release.llm.report import LLMReport
from ml_release.llm.verdicts import comparison_row, worst
from ml_release.spec import GateSpec
from ml_release.stats.paired import Comparison, paired_mean_delta, resamples_for
from ml_release.stats.verdict import Decision, decide


def _increase(
    name: str, c: np.ndarray, b: np.ndarray, max_increase: float, confidence: float
) -> tuple[Comparison, Decision]:
    comparison = paired_mean_delta(c.astype(float), b.astype(float), confidence, name)
    return comparison, decide(comparison, greater_is_better=False, max_relative_drop=max_increase)


def _no_production(gate: GateSpec, what: str, observed: float) -> GateResult:
    return gate_result(
        gate,
        Verdict.PASS,
        f"{what} {observed:.4g}; no production prompt yet (first release): nothing to compare",
        "none",
        observed=observed,
    )


def tokens(gate: GateSpec, report: LLMReport) -> GateResult:
    """Mean prompt and completion tokens per answer within the tolerated increases."""
    params: TokensParams = gate.params
    c = report.candidate
    if report.production is None:
        return _no_production(
            gate, "completion tokens per answer", float(c["completion_tokens"].mean())
        )
    b = report.production
    checks = [
        ("completion_tokens", params.max_increase),
        ("prompt_tokens", params.max_input_increase),
    ]
    rows, verdicts, reasons = [], [], []
    for column, margin in checks:
        comparison, decision = _increase(
            column, c[column].to_numpy(), b[column].to_numpy(), margin, params.confidence
        )
        rows.append(
            {
                **comparison_row(column, comparison, decision),
                "increase": comparison.delta / comparison.baseline
                if comparison.baseline
                else math.nan,
            }
        )
        verdicts.append(decision.verdict)
        reasons.append(decision.reason)
    out = rows[0]
    return gate_result(
        gate,
        worst(verdicts),
        "; ".join(reasons),
        "paired t per question, relative margin",
        observed=out["candidate"],
        baseline=out["baseline"],
        threshold=params.max_increase,
        direction="lower_is_better",
        interval=(out["low"], out["high"]),
        support={"questions": len(c)},
        rows=rows,
    )


def _unpriced(gate: GateSpec, model: str) -> GateResult:
    """No price, no cost estimate: inconclusive, never a cost of 0."""
    return gate_result(
        gate,
        Verdict.INCONCLUSIVE,
        f"no price for {model}: add it to llm.pricing",
        "tokens x llm.pricing",
    )


def cost(gate: GateSpec, report: LLMReport) -> GateResult:
    """Estimated cost per answer within the tolerated increase."""
    params: IncreaseParams = gate.params
    c = report.candidate["cost"].to_numpy(float)
    if np.isnan(c).any():
        return _unpriced(gate, f"model {report.candidate_model!r}")
    if report.production is None:
        return _no_production(gate, "cost per answer", float(c.mean()))
    b = report.production["cost"].to_numpy(float)
    if np.isnan(b).any():
        return _unpriced(gate, f"production's model {report.production_model!r}")
    comparison, decision = _increase(
        "cost_per_answer", c, b, params.max_increase, params.confidence
    )
    return gate_result(
        gate,
        decision.verdict,
        decision.reason,
        "tokens x llm.pricing; paired t, relative margin",
        observed=comparison.candidate,
        baseline=comparison.baseline,
        threshold=params.max_increase,
        direction="lower_is_better",
        interval=(comparison.low, comparison.high),
        support={"questions": comparison.n},
        rows=[comparison_row("cost_per_answer", comparison, decision)],
    )


def p95_comparison(
    c: np.ndarray, b: np.ndarray, name: str, confidence: float, resamples: int, seed: int
) -> Comparison:
    """Paired bootstrap of p95(candidate) - p95(production) over the same questions.

    At least 20 draws lie beyond each end of the interval (`resamples_for`).
    """
    n = len(c)
    resamples = resamples_for(confidence, resamples)
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    draws = np.percentile(c[index], 95, axis=1) - np.percentile(b[index], 95, axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    c95, b95 = float(np.percentile(c, 95)), float(np.percentile(b, 95))
    return Comparison(
        name,
        c95,
        b95,
        c95 - b95,
        float(low),
        float(high),
        confidence,
        f"paired_bootstrap(B={resamples})",
        n,
        draws=draws,
    )


def p95_time(gate: GateSpec, report: LLMReport) -> GateResult:
    """p95 time to first token or total latency within the tolerated increase."""
    params: IncreaseParams = gate.params
    column = "ttft_ms" if gate.name == "llm_ttft_p95_vs_baseline" else "latency_ms"
    c = report.candidate[column].to_numpy(float)
    if report.production is None:
        return _no_production(gate, f"p95 {column}", float(np.percentile(c, 95)))
    b = report.production[column].to_numpy(float)
    comparison = p95_comparison(
        c, b, f"p95_{column}", params.confidence, report.resamples, report.seed
    )
    decision = decide(comparison, greater_is_better=False, max_relative_drop=params.max_increase)
    return gate_result(
        gate,
        decision.verdict,
        decision.reason,
        comparison.method,
        observed=comparison.candidate,
        baseline=comparison.baseline,
        threshold=params.max_increase,
        direction="lower_is_better",
        interval=(comparison.low, comparison.high),
        support={"questions": comparison.n},
        draws=len(comparison.draws),
        rows=[comparison_row(f"p95_{column}", comparison, decision)],
    )
