"""One LLM evaluation: the candidate and production prompt/configs on the same RAG set."""

from collections.abc import Callable

import numpy as np
import pandas as pd

from ml_release.llm.clients import LLMClient
from ml_release.llm.config import PromptConfig
from ml_release.llm.dataset import RagSet, Retriever
from ml_release.llm.evaluate import answer_table
from ml_release.llm.report import JudgeScores, LLMReport
from ml_release.llm.spec import LLMSpec

# (RAG set, answers of one version, runs) -> scores, one row per answer and a column per run
JudgeRunner = Callable[[RagSet, pd.DataFrame, int], np.ndarray]


def evaluate_release(
    rag: RagSet,
    candidate: PromptConfig,
    production: PromptConfig | None,
    client: LLMClient,
    settings: LLMSpec,
    judge: JudgeRunner | None = None,
) -> LLMReport:
    """Both versions answer every question through `client`; the report pairs them."""
    retriever = Retriever(rag.passages)
    tables = {
        "candidate": answer_table(rag, candidate, client, settings.pricing, retriever),
        "production": answer_table(rag, production, client, settings.pricing, retriever)
        if production is not None
        else None,
    }
    scores = None
    if judge is not None:
        scores = JudgeScores(
            judge(rag, tables["candidate"], settings.judge_runs),
            judge(rag, tables["production"], settings.judge_runs)
            if tables["production"] is not None
            else None,
        )
    return LLMReport(
        tables["candidate"],
        tables["production"],
        candidate.version,
        production.version if production else None,
        candidate.model,
        production.model if production else None,
        contexts={pid: p.text for pid, p in rag.passages.items()},
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
        judge=scores,
    )
