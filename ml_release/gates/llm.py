"""Catalog entries of the LLM gates, judged on `llm_evaluation_report`.

The candidate prompt/config and production's answer the same questions; quality gates compare
them question by question (paired), globally and in every route, with false alarms controlled
across routes. Cost and speed gates tolerate a relative increase over production. Methods:
docs/llm.md.
"""

from pydantic import Field, field_validator

from ml_release.gates.catalog_base import (
    GateDefinition,
    GateParams,
    SmallSegments,
    small_segments_field,
)


class LLMQualityParams(GateParams):
    """A per-answer score in [0, 1], candidate minus production on the same questions."""

    max_drop: float = Field(0.05, ge=0.0, le=1.0, description="Tolerated drop of the mean score.")
    min_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Absolute floor of the candidate's mean (also the only rule on a first "
        "release, when there is no production to compare with).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Family confidence.")
    min_support: int = Field(
        10, ge=2, description="A route with fewer answered questions is small (see small_routes)."
    )
    routes: bool = Field(True, description="Also judge every route (Bonferroni across routes).")
    small_routes: SmallSegments = small_segments_field()


class StructuredParams(GateParams):
    """Answers of structured routes that must be JSON matching the route's schema."""

    max_failure_rate: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Highest tolerated share of failing answers: the gate passes when the exact "
        "interval's upper bound is at most this.",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Exact binomial interval.")

    @field_validator("max_failure_rate", mode="before")
    @classmethod
    def _not_zero(cls, value: object) -> object:
        if value == 0:
            raise ValueError(
                "max_failure_rate: 0 can never pass: no finite number of answers shows a "
                "failure rate of exactly 0. Give the rate you tolerate; with n structured "
                "answers and none failing, the exact 95 % upper bound is 1 - 0.025^(1/n) "
                "(about 3.7/n: 0.05 needs 72 answers, 0.25 needs 13)"
            )
        return value


class IncreaseParams(GateParams):
    """A cost or speed measure, candidate against production, with a tolerated increase."""

    max_increase: float = Field(
        0.2, ge=0.0, description="Tolerated increase over production, as a share (0.2 = +20 %)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence.")


class TokensParams(IncreaseParams):
    """Input and output tokens per answer against production's."""

    max_input_increase: float = Field(
        0.2, ge=0.0, description="Tolerated increase of prompt tokens per answer, as a share."
    )


class JudgeParams(GateParams):
    """LLM-judged faithfulness (ragas `Faithfulness`), each answer judged `llm.judge_runs` times."""

    max_drop: float = Field(0.05, ge=0.0, le=1.0, description="Tolerated drop of the mean score.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence.")


QUALITY_METRICS = {
    "llm_groundedness_vs_baseline": "groundedness",
    "llm_context_precision_vs_baseline": "context_precision",
    "llm_context_recall_vs_baseline": "context_recall",
    "llm_answer_similarity_vs_baseline": "answer_similarity",
}


def _quality_rule(metric: str) -> str:
    return (
        f"Paired t intervals of the mean {metric}, candidate minus production on the same "
        "questions, over all questions and (with `routes`) every route with at least "
        "`min_support` questions (smaller routes follow `small_routes`: `pool`, the default, "
        "judges them together as one more route; `block` makes the gate `inconclusive` while "
        "any exists; `warn` lists them, not judged), at `confidence` "
        "Bonferroni-adjusted over these judged comparisons. Each: `fail` when it lies entirely "
        "below -`max_drop`, `pass` when its lower bound is at least -`max_drop`, `inconclusive` "
        "otherwise. With `min_score`, the t interval of the candidate's mean at `confidence`: "
        "`fail` when it lies below `min_score`, `pass` when its lower bound is at least "
        "`min_score`, `inconclusive` otherwise. The gate takes the worst of these verdicts. "
        "With fewer than `min_support` questions in all, nothing can be compared: "
        "`inconclusive`. With no production (first release), only `min_score` is judged "
        "(`pass` without it)."
    )


def _structured_rule(what: str) -> str:
    return (
        "Share of the candidate's answers to structured routes (questions naming a `schema`) "
        f"that {what}, with its exact (Clopper-Pearson) interval at `confidence`: `pass` when "
        "the upper bound is at most `max_failure_rate` (the data show the rate is tolerable), "
        "`fail` when the lower bound is above it, `inconclusive` otherwise (too few answers to "
        "tell) or when no question names a schema. The same with or without production."
    )


def _increase_rule(measure: str, limit: str) -> str:
    return (
        f"`fail` when the interval lies entirely above `{limit}` x production's {measure}, "
        "`pass` when its upper bound is at most that, `inconclusive` otherwise"
    )


def _p95_rule(measure: str) -> str:
    return (
        "Paired bootstrap (`llm.bootstrap_resamples` resamples of the questions, seed "
        f"`llm.seed`) percentile interval at `confidence` of p95 {measure}, candidate minus "
        f"production: {_increase_rule(f'p95 {measure}', 'max_increase')}. With no production "
        "(first release): `pass`."
    )


def llm_gates() -> list[GateDefinition]:
    """One entry per LLM gate."""
    return [
        GateDefinition(
            "llm_groundedness_vs_baseline",
            "llm",
            LLMQualityParams,
            "Share of answer statements supported by the retrieved context (deterministic "
            "proxy), no worse than production beyond the margin, globally and per route.",
            verdict_rule=_quality_rule("groundedness"),
            example={"max_drop": 0.05, "min_score": 0.8},
        ),
        GateDefinition(
            "llm_context_precision_vs_baseline",
            "llm",
            LLMQualityParams,
            "Retrieval precision against the reference contexts (ragas "
            "NonLLMContextPrecisionWithReference), no worse than production's.",
            verdict_rule=_quality_rule("context precision"),
            example={"max_drop": 0.05},
        ),
        GateDefinition(
            "llm_context_recall_vs_baseline",
            "llm",
            LLMQualityParams,
            "Retrieval recall of the reference contexts (ragas NonLLMContextRecall), no worse "
            "than production's.",
            verdict_rule=_quality_rule("context recall"),
            example={"max_drop": 0.05},
        ),
        GateDefinition(
            "llm_answer_similarity_vs_baseline",
            "llm",
            LLMQualityParams,
            "ROUGE-L F1 of the answer against the reference answer (ragas RougeScore), no worse "
            "than production's.",
            verdict_rule=_quality_rule("ROUGE-L F1"),
            example={"max_drop": 0.1},
        ),
        GateDefinition(
            "llm_json_validity",
            "llm",
            StructuredParams,
            "Answers of structured routes parse as JSON.",
            verdict_rule=_structured_rule("do not parse as JSON as they are"),
            example={"max_failure_rate": 0.05},
        ),
        GateDefinition(
            "llm_schema_conformance",
            "llm",
            StructuredParams,
            "Answers of structured routes are JSON matching the route's JSON Schema.",
            verdict_rule=_structured_rule(
                "are not JSON or do not validate against the route's JSON Schema"
            ),
            example={"max_failure_rate": 0.05},
        ),
        GateDefinition(
            "llm_tokens_vs_baseline",
            "llm",
            TokensParams,
            "Mean prompt and completion tokens per answer within the tolerated increase over "
            "production's.",
            verdict_rule="Paired t intervals at `confidence` of the mean per-question difference, "
            "candidate minus production, of completion tokens and of prompt tokens; completion: "
            + _increase_rule("mean completion tokens", "max_increase")
            + "; prompt: the same with `max_input_increase`. The gate takes the worse verdict. "
            "With no production (first release): `pass`.",
            example={"max_increase": 0.2, "max_input_increase": 0.2},
        ),
        GateDefinition(
            "llm_cost_vs_baseline",
            "llm",
            IncreaseParams,
            "Estimated cost per answer (llm.pricing) within the tolerated increase.",
            verdict_rule="`inconclusive` when the candidate's model has no `llm.pricing` entry "
            "(even on a first release), or production's has none. Otherwise a paired t interval "
            "at `confidence` of the mean per-question cost difference, candidate minus "
            "production: " + _increase_rule("mean cost per answer", "max_increase") + ". With "
            "no production (first release) and a priced model: `pass`.",
            example={"max_increase": 0.2},
        ),
        GateDefinition(
            "llm_ttft_p95_vs_baseline",
            "llm",
            IncreaseParams,
            "p95 time to first token within the tolerated increase over production's.",
            verdict_rule=_p95_rule("time to first token"),
            example={"max_increase": 0.25},
        ),
        GateDefinition(
            "llm_latency_p95_vs_baseline",
            "llm",
            IncreaseParams,
            "p95 total answer latency within the tolerated increase over production's.",
            verdict_rule=_p95_rule("latency"),
            example={"max_increase": 0.25},
        ),
        GateDefinition(
            "llm_judge_faithfulness",
            "llm",
            JudgeParams,
            "Optional: ragas Faithfulness judged by an LLM endpoint k times per answer, "
            "no worse than production's beyond the margin.",
            verdict_rule="Each answer is judged `llm.judge_runs` times; paired t interval at "
            "`confidence` of the mean of the per-question mean scores, candidate minus "
            "production, over all questions (no routes): `fail` when it lies entirely below "
            "-`max_drop`, `pass` when its lower bound is at least -`max_drop`, `inconclusive` "
            "otherwise. With no production (first release): `pass`. Without a judge model on the "
            "`llm_client` resource (recorded answers have none) the evaluation fails with an "
            "error instead of a verdict.",
            example={"max_drop": 0.05},
        ),
    ]
