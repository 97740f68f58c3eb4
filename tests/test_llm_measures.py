"""Deterministic measurements and the LLM gates: each with a passing and a failing case."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from ml_release.errors import DataInputError, SpecError
from ml_release.gates.catalog import CATALOG
from ml_release.gates.result import Verdict
from ml_release.llm.config import parse_config
from ml_release.llm.evaluate import ANSWER_COLUMNS
from ml_release.llm.gates import JUDGES
from ml_release.llm.groundedness import groundedness, statements
from ml_release.llm.report import ALL, JudgeScores, LLMReport
from ml_release.llm.structured import check_structured
from ml_release.spec import parse_spec
from tests.llm_support import PROJECT

CONTEXT = [
    "The Team plan allows refund requests within 30 days of a charge. Refunds go back to the "
    "original payment method."
]
SCHEMA = json.loads((PROJECT / "ml_release/demo/rag/schemas/ticket.json").read_text())


# -- groundedness proxy ---------------------------------------------------------------------
def test_a_supported_answer_scores_one():
    answer = (
        "The Team plan allows refund requests within 30 days. Refunds go back to the "
        "original payment method."
    )
    result = groundedness(answer, CONTEXT)
    assert result.score == 1.0 and len(result.checks) == 2 and result.unsupported == []


def test_a_partly_supported_answer_scores_its_supported_share():
    answer = (
        "Refunds on the Team plan can be requested within 30 days of a charge. "
        "Premium members always receive twice this amount at no extra charge."
    )
    result = groundedness(answer, CONTEXT)
    assert result.score == 0.5
    assert "premium" in result.unsupported[0].missing
    assert "Premium members" in result.why()


def test_an_unsupported_answer_and_an_invented_number_score_zero():
    assert (
        groundedness("Our partners guarantee free storage for every customer.", CONTEXT).score == 0
    )
    invented = groundedness("The Team plan allows refund requests within 45 days.", CONTEXT)
    assert invented.score == 0.0 and invented.unsupported[0].missing == ("45",)


def test_short_pleasantries_are_not_statements_and_json_leaves_are():
    assert groundedness("Great question!", CONTEXT).checks == []
    assert statements('{"category": "billing", "priority": "high"}') == [
        "category billing",
        "priority high",
    ]


# -- structured answers ------------------------------------------------------------------------
def test_valid_json_matching_the_schema_passes():
    answer = json.dumps({"category": "billing", "priority": "high", "summary": "duplicate charge"})
    assert check_structured(answer, SCHEMA).schema_valid


@pytest.mark.parametrize(
    ("answer", "json_valid", "problem"),
    [
        ('Here is the ticket: {"category": "billing"}', False, "not JSON"),
        ("{'category': 'billing'}", False, "not JSON"),
        ('{"category": "billing", "priority": "urgent", "summary": "x y"}', True, "priority"),
        ('{"category": "billing", "summary": "a charge"}', True, "'priority' is a required"),
        ('{"category": "billing", "priority": "low", "summary": "abc", "x": 1}', True, "x"),
    ],
)
def test_invalid_json_and_schema_violations_fail_with_the_reason(answer, json_valid, problem):
    check = check_structured(answer, SCHEMA)
    assert check.json_valid is json_valid and not check.schema_valid
    assert problem in check.problem


# -- gates on synthetic reports -------------------------------------------------------------------
def _frame(n: int = 60, version: str = "v", **columns) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    routes = np.array(["a", "b", "c"])[np.arange(n) % 3]
    data = {
        "question_id": [f"q{i}" for i in range(n)],
        "route": routes,
        "version": version,
        "question": "q",
        "answer": "a",
        "retrieved_ids": "p1",
        "groundedness": np.ones(n),
        "unsupported": "",
        "context_precision": np.ones(n),
        "context_recall": np.ones(n),
        "answer_similarity": np.ones(n),
        "structured": np.arange(n) % 3 == 2,
        "json_valid": True,
        "schema_valid": True,
        "structured_problem": "",
        "prompt_tokens": 150 + rng.integers(0, 10, n),
        "completion_tokens": 20 + rng.integers(0, 10, n),
        "cost": 1e-5,
        "ttft_ms": rng.lognormal(np.log(300), 0.2, n),
        "latency_ms": 0.0,
    }
    data.update(columns)
    frame = pd.DataFrame(data)[ANSWER_COLUMNS]
    frame["latency_ms"] = frame["ttft_ms"] + 400
    return frame


def _report(candidate: pd.DataFrame, production: pd.DataFrame | None) -> LLMReport:
    return LLMReport(
        candidate,
        production,
        "cand",
        "prod" if production is not None else None,
        "m",
        "m",
        resamples=1000,
    )


def _judge(name: str, report: LLMReport, **params):
    gate = SimpleNamespace(
        name=name, target="llm_evaluation_report", params=CATALOG[name].params(**params)
    )
    return JUDGES[name](gate, report)


def test_groundedness_gate_passes_a_small_drop_and_fails_a_large_one_in_one_route():
    production = _frame()
    small = production.assign(groundedness=np.where(np.arange(60) % 10 == 0, 0.9, 1.0))
    assert (
        _judge("llm_groundedness_vs_baseline", _report(small, production)).verdict is Verdict.PASS
    )
    route_b = (production["route"] == "b").to_numpy()
    broken = production.assign(groundedness=np.where(route_b, 0.3, 1.0))
    result = _judge("llm_groundedness_vs_baseline", _report(broken, production))
    assert result.verdict is Verdict.FAIL
    by_route = {r["route"]: r["verdict"] for r in result.rows}
    assert by_route["b"] == "fail" and by_route["a"] == "pass" and by_route[ALL] == "fail"


def test_quality_intervals_are_paired_t_intervals_at_the_bonferroni_level():
    production = _frame()
    rng = np.random.default_rng(3)
    candidate = production.assign(groundedness=np.clip(1 - rng.uniform(0, 0.2, 60), 0, 1))
    result = _judge("llm_groundedness_vs_baseline", _report(candidate, production))
    diff = candidate["groundedness"].to_numpy() - production["groundedness"].to_numpy()
    level = 1 - 0.05 / 4  # all questions and three routes
    low, high = stats.t.interval(level, len(diff) - 1, diff.mean(), stats.sem(diff))
    overall = next(r for r in result.rows if r["route"] == ALL)
    assert overall["low"] == pytest.approx(low) and overall["high"] == pytest.approx(high)


def test_too_few_questions_to_judge_is_inconclusive_never_a_pass():
    production = _frame()
    result = _judge(
        "llm_groundedness_vs_baseline", _report(production, production), min_support=100
    )
    assert result.verdict is Verdict.INCONCLUSIVE and "fewer than min_support" in result.summary
    assert result.support["routes_judged"] == 0


def test_first_release_has_no_comparison_but_keeps_the_floor():
    ok = _report(_frame(), None)
    assert _judge("llm_groundedness_vs_baseline", ok, min_score=0.8).verdict is Verdict.PASS
    weak = _report(_frame(groundedness=np.full(60, 0.5)), None)
    result = _judge("llm_groundedness_vs_baseline", weak, min_score=0.8)
    assert result.verdict is Verdict.FAIL and "below the floor" in result.summary


def test_a_token_usage_rise_is_caught():
    production = _frame()
    same = production.assign(completion_tokens=production["completion_tokens"] + 1)
    assert _judge("llm_tokens_vs_baseline", _report(same, production)).verdict is Verdict.PASS
    verbose = production.assign(completion_tokens=(production["completion_tokens"] * 1.4).round())
    result = _judge("llm_tokens_vs_baseline", _report(verbose, production), max_increase=0.2)
    assert result.verdict is Verdict.FAIL
    assert result.rows[0]["increase"] == pytest.approx(0.4, abs=0.02)
    longer_prompts = production.assign(prompt_tokens=production["prompt_tokens"] * 2)
    result = _judge("llm_tokens_vs_baseline", _report(longer_prompts, production))
    assert result.verdict is Verdict.FAIL and result.rows[1]["verdict"] == "fail"


def test_structured_gates_pass_on_the_exact_upper_bound_not_the_point_estimate():
    production = _frame()  # 20 structured answers, none failing
    clean = _judge("llm_json_validity", _report(production, production))
    exact = stats.binomtest(0, 20).proportion_ci(0.95, method="exact")  # independent method
    assert clean.interval == pytest.approx((exact.low, exact.high))
    assert clean.verdict is Verdict.INCONCLUSIVE and "too few answers" in clean.summary
    tolerant = _judge("llm_json_validity", _report(production, production), max_failure_rate=0.2)
    assert tolerant.verdict is Verdict.PASS  # 16.8 % <= 20 %

    broken = production.copy()
    structured = broken.index[broken["structured"]]
    broken.loc[structured[:8], ["json_valid", "schema_valid"]] = False
    broken.loc[structured[:8], "structured_problem"] = "not JSON"
    result = _judge("llm_json_validity", _report(broken, production), max_failure_rate=0.1)
    assert result.verdict is Verdict.FAIL and result.support == {"answers": 20, "failed": 8}
    assert result.interval[0] > 0.1  # 8 of 20: even the lower bound is above the tolerance
    one = broken.copy()
    one.loc[structured[1:8], ["json_valid", "schema_valid"]] = True
    tolerant = _judge("llm_schema_conformance", _report(one, production), max_failure_rate=0.3)
    assert tolerant.verdict is Verdict.PASS  # 1 of 20: upper bound 24.9 % <= 30 %


def test_a_zero_failure_rate_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="max_failure_rate: 0 can never pass"):
        CATALOG["llm_json_validity"].params(max_failure_rate=0.0)


def test_p95_latency_gate_passes_noise_and_fails_a_slowdown():
    production = _frame()
    noisy = production.assign(ttft_ms=production["ttft_ms"] * 1.02)
    assert _judge("llm_ttft_p95_vs_baseline", _report(noisy, production)).verdict is Verdict.PASS
    slow = production.assign(ttft_ms=production["ttft_ms"] * 1.6)
    assert _judge("llm_ttft_p95_vs_baseline", _report(slow, production)).verdict is Verdict.FAIL


def test_cost_without_a_price_is_inconclusive_not_zero():
    production = _frame()
    unpriced = production.assign(cost=np.nan)
    result = _judge("llm_cost_vs_baseline", _report(unpriced, production))
    assert result.verdict is Verdict.INCONCLUSIVE and "llm.pricing" in result.summary


def test_judge_gate_reads_the_mean_of_k_runs():
    production = _frame()
    report = _report(production, production)
    rng = np.random.default_rng(1)
    report.judge = JudgeScores(rng.uniform(0.85, 1.0, (60, 3)), rng.uniform(0.85, 1.0, (60, 3)))
    result = _judge("llm_judge_faithfulness", report, max_drop=0.1)
    assert result.verdict is Verdict.PASS and result.support["runs"] == 3
    report.judge = JudgeScores(rng.uniform(0.2, 0.5, (60, 3)), rng.uniform(0.85, 1.0, (60, 3)))
    assert _judge("llm_judge_faithfulness", report).verdict is Verdict.FAIL


# -- spec and config -------------------------------------------------------------------------
def _rag_spec() -> dict:
    return yaml.safe_load((PROJECT / "examples/rag/release.yaml").read_text())


def test_the_llm_spec_needs_its_section_and_llm_gates():
    source = PROJECT / "examples/rag/release.yaml"
    assert parse_spec(_rag_spec(), source).gates_for("llm_evaluation_report")
    without = {k: v for k, v in _rag_spec().items() if k != "llm"}
    with pytest.raises(SpecError, match="`llm` is required"):
        parse_spec(without, source)
    tabular_gate = _rag_spec()
    tabular_gate["gates"].append({"name": "min_roc_auc", "threshold": 0.6})
    with pytest.raises(SpecError, match=r"'min_roc_auc' does not apply to model\.task llm"):
        parse_spec(tabular_gate, source)
    twice = _rag_spec()
    twice["gates"].append({"name": "llm_json_validity", "must_pass": False})
    with pytest.raises(SpecError, match="'llm_json_validity' is listed twice"):
        parse_spec(twice, source)


def test_a_prompt_config_without_placeholders_is_refused():
    text = "name: a\nversion: v1\nmodel: m\ntemplate: 'Answer: {question}'\n"
    with pytest.raises(DataInputError, match=r"lacks \{context\}"):
        parse_config(text, "prompt.yaml")


def _with_small_routes(frame: pd.DataFrame) -> pd.DataFrame:
    """Route a keeps its 20 questions; b and c are split into eight routes of 5 each."""
    small = frame["route"] != "a"
    names = [f"r{i // 5}" for i in range(int(small.sum()))]
    return frame.assign(
        route=frame["route"].where(~small, pd.Series(names, index=frame.index[small]))
    )


@pytest.mark.reliability("input")
def test_a_drop_confined_to_small_routes_is_judged_pooled():
    production = _with_small_routes(_frame())
    worse = production.assign(groundedness=np.where(production["route"] != "a", 0.5, 1.0))
    result = _judge("llm_groundedness_vs_baseline", _report(worse, production), min_support=10)
    assert result.verdict is Verdict.FAIL, result.summary
    assert "8 routes below min_support judged pooled" in result.summary
    pooled = next(r for r in result.rows if r["route"].startswith("(small routes"))
    assert pooled["verdict"] == "fail"


def test_small_routes_block_makes_the_gate_inconclusive():
    production = _with_small_routes(_frame())
    result = _judge(
        "llm_groundedness_vs_baseline",
        _report(production, production),
        min_support=10,
        small_routes="block",
    )
    assert result.verdict is Verdict.INCONCLUSIVE and "small_routes: block" in result.summary
