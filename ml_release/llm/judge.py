"""Optional LLM-judged faithfulness: ragas `Faithfulness` through an OpenAI-compatible endpoint.

LLM judges vary from run to run, so every answer is judged `runs` times; the gate compares the
per-question means of candidate and production (paired), and shows the spread of the run means.
An answer from which the judge extracts no statement scores 1, as in the deterministic proxy.
Only used when a judge model is configured on the `llm_client` resource.
"""

import asyncio
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_release.llm.dataset import RagSet

os.environ["RAGAS_DO_NOT_TRACK"] = "true"


@dataclass(frozen=True)
class FaithfulnessJudge:
    """Scores answers with ragas Faithfulness, `runs` times each."""

    base_url: str
    api_key: str
    model: str
    timeout_seconds: float = 60.0

    def __call__(self, rag: RagSet, answers: pd.DataFrame, runs: int) -> np.ndarray:
        """Scores, one row per answer and one column per run."""
        return asyncio.run(self._score(rag, answers, runs))

    async def _score(self, rag: RagSet, answers: pd.DataFrame, runs: int) -> np.ndarray:
        from openai import AsyncOpenAI
        from ragas.llms.base import llm_factory
        from ragas.metrics.collections import Faithfulness

        client = AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key or "none", timeout=self.timeout_seconds
        )
        metric = Faithfulness(llm=llm_factory(self.model, client=client))
        out = np.ones((len(answers), runs))
        for i, row in enumerate(answers.itertuples()):
            contexts = [rag.passages[p].text for p in row.retrieved_ids.split(",")]
            for run in range(runs):
                result = await metric.ascore(
                    user_input=row.question, response=row.answer, retrieved_contexts=contexts
                )
                if np.isfinite(result.value):
                    out[i, run] = float(result.value)
        return out
