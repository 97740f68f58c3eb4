"""One prompt/config version answering the RAG set, measured answer by answer.

`answer_table` retrieves passages with the version's retrieval settings, renders its prompt,
has the client generate, and scores every answer: the groundedness proxy, ragas' non-LLM
reference scores, JSON validity and schema conformance on structured routes, tokens, estimated
cost, time to first token and latency. One row per question, in the RAG set's order.
"""

import pandas as pd

from ml_release.llm.clients import GenerationRequest, LLMClient
from ml_release.llm.config import PromptConfig
from ml_release.llm.dataset import RagSet, Retriever
from ml_release.llm.groundedness import groundedness
from ml_release.llm.spec import ModelPrice
from ml_release.llm.structured import check_structured

ANSWER_COLUMNS = [
    "question_id",
    "route",
    "version",
    "question",
    "answer",
    "retrieved_ids",
    "groundedness",
    "unsupported",
    "context_precision",
    "context_recall",
    "answer_similarity",
    "structured",
    "json_valid",
    "schema_valid",
    "structured_problem",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "ttft_ms",
    "latency_ms",
]


def requests_for(
    rag: RagSet, config: PromptConfig, retriever: Retriever
) -> tuple[list[GenerationRequest], list[list[str]]]:
    """The rendered request of every question, and the retrieved passage ids."""
    requests, retrieved = [], []
    for question in rag.questions:
        ids = retriever.retrieve(question.question, config.retrieval)
        contexts = [rag.passages[i].text for i in ids]
        requests.append(GenerationRequest(question.id, config.render(question.question, contexts)))
        retrieved.append(ids)
    return requests, retrieved


def answer_table(
    rag: RagSet,
    config: PromptConfig,
    client: LLMClient,
    pricing: dict[str, ModelPrice] | None = None,
    retriever: Retriever | None = None,
) -> pd.DataFrame:
    """Every question answered by `config` through `client`, with its measurements."""
    # ragas takes ~2 s to import: only an evaluation pays it, not loading the code location.
    from ml_release.llm.references import ReferenceInput, reference_scores

    retriever = retriever or Retriever(rag.passages)
    requests, retrieved = requests_for(rag, config, retriever)
    generations = client.generate(config, requests)
    contexts = [[rag.passages[i].text for i in ids] for ids in retrieved]
    scores = reference_scores(
        [
            ReferenceInput(g.answer, q.reference, ctx, rag.reference_contexts(q))
            for q, g, ctx in zip(rag.questions, generations, contexts, strict=True)
        ]
    )
    price = (pricing or {}).get(config.model)
    rows = []
    for question, generation, ids, ctx, score in zip(
        rag.questions, generations, retrieved, contexts, scores, strict=True
    ):
        grounded = groundedness(generation.answer, ctx)
        structured = question.schema is not None
        check = (
            check_structured(generation.answer, rag.schemas[question.schema])
            if structured
            else None
        )
        cost = (
            (
                generation.prompt_tokens * price.input_per_million
                + generation.completion_tokens * price.output_per_million
            )
            / 1e6
            if price
            else float("nan")
        )
        rows.append(
            {
                "question_id": question.id,
                "route": question.route,
                "version": config.version,
                "question": question.question,
                "answer": generation.answer,
                "retrieved_ids": ",".join(ids),
                "groundedness": grounded.score,
                "unsupported": grounded.why(),
                "context_precision": score.context_precision,
                "context_recall": score.context_recall,
                "answer_similarity": score.answer_similarity,
                "structured": structured,
                "json_valid": check.json_valid if check else None,
                "schema_valid": check.schema_valid if check else None,
                "structured_problem": check.problem if check else "",
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
                "cost": cost,
                "ttft_ms": generation.ttft_ms,
                "latency_ms": generation.latency_ms,
            }
        )
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)
