"""Scores against references with ragas' non-LLM metrics, fully offline.

- context precision: `NonLLMContextPrecisionWithReference`, retrieved passages against the
  reference passages by string similarity (rapidfuzz Levenshtein, match at >= 0.5), averaged
  precision over the ranking;
- context recall: `NonLLMContextRecall`, the share of reference passages found among the
  retrieved ones;
- answer similarity: `RougeScore` (ROUGE-L F1) of the answer against the reference answer.

ragas reports usage unless `RAGAS_DO_NOT_TRACK` is the string `true` (`1` is not enough): it is
forced before ragas is imported. The two context metrics exist only in ragas' classic metric
modules in 0.4.3 (`ragas.metrics.collections` has no non-LLM context metric); they are imported
from there directly to avoid the deprecation shim.
"""

import asyncio
import os
from dataclasses import dataclass

os.environ["RAGAS_DO_NOT_TRACK"] = "true"

from ragas.dataset_schema import SingleTurnSample
from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
from ragas.metrics._context_recall import NonLLMContextRecall
from ragas.metrics.collections import RougeScore


@dataclass(frozen=True)
class ReferenceInput:
    """What one answer is scored on."""

    answer: str
    reference: str
    retrieved_contexts: list[str]
    reference_contexts: list[str]


@dataclass(frozen=True)
class ReferenceScores:
    """ragas' non-LLM scores of one answer, each in [0, 1]."""

    context_precision: float
    context_recall: float
    answer_similarity: float


async def _score_all(inputs: list[ReferenceInput]) -> list[ReferenceScores]:
    precision = NonLLMContextPrecisionWithReference()
    recall = NonLLMContextRecall()
    rouge = RougeScore(rouge_type="rougeL", mode="fmeasure")
    out = []
    for item in inputs:
        sample = SingleTurnSample(
            retrieved_contexts=item.retrieved_contexts,
            reference_contexts=item.reference_contexts,
        )
        similarity = await rouge.ascore(reference=item.reference, response=item.answer)
        out.append(
            ReferenceScores(
                float(await precision.single_turn_ascore(sample)),
                float(await recall.single_turn_ascore(sample)),
                float(similarity.value),
            )
        )
    return out


def reference_scores(inputs: list[ReferenceInput]) -> list[ReferenceScores]:
    """The non-LLM ragas scores of every input, in order (no network, no model)."""
    empty = [i for i, item in enumerate(inputs) if not item.retrieved_contexts]
    if empty:
        raise ValueError(
            f"{len(empty)} answers have no retrieved context (first: row {empty[0]}); "
            "retrieval.top_k must be at least 1"
        )
    return asyncio.run(_score_all(inputs))
