"""Release gates for LLM and RAG applications (`model.task: llm`).

- `spec`: the `llm:` section of the release spec;
- `config`, `candidate`: the versioned prompt/config and its artifact (kind `llm_config`);
- `dataset`, `text`: the RAG set (corpus, questions, routes, schemas) and the retriever;
- `clients`: generation through an OpenAI-compatible streaming endpoint or recorded answers;
- `groundedness`, `structured`, `references`: per-answer measurements (the deterministic
  proxy, JSON and schema checks, ragas' non-LLM metrics); `judge`: optional LLM judge;
- `evaluate`, `run`: one answer table per version, and both versions on one RAG set;
- `report`, `page`: the paired comparison and its evidence;
- `gates`, `usage`, `verdicts`: verdicts of the `llm` gate family;
- `history`: which prompt/config version was in production at a given time.

Nothing here imports Dagster; ragas is imported only when answers are scored.
"""
