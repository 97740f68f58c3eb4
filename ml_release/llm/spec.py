"""The `llm:` section of a release spec: where the RAG set, the candidate and the answers live."""

from pathlib import Path

from pydantic import Field

from ml_release.spec_data import HOME_PLACEHOLDER, SpecModel


class ModelPrice(SpecModel):
    """Price of one model's tokens, in any currency unit per million tokens."""

    input_per_million: float = Field(ge=0.0, description="Price of a million prompt tokens.")
    output_per_million: float = Field(ge=0.0, description="Price of a million completion tokens.")


class LLMSpec(SpecModel):
    """An LLM application under release: its RAG set, candidate prompt/config and answers."""

    dataset: str = Field(
        description="Folder of the RAG set: corpus.jsonl, questions.jsonl, schemas/*.json "
        "(see docs/llm.md)."
    )
    candidate: str = Field(
        description="Prompt/config file (YAML or JSON) gated when the run names no artifact."
    )
    responses: str | None = Field(
        None,
        description="Folder of recorded answers, `<prompt version>.jsonl`, read by the replay "
        "client; unused when the `llm_client` resource is an endpoint.",
    )
    pricing: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Token prices per model name, for the estimated cost; for a model without "
        "a price no cost is estimated and the cost gate is inconclusive.",
    )
    bootstrap_resamples: int = Field(
        2000, ge=200, le=20_000, description="Paired bootstrap resamples for p95 latencies."
    )
    seed: int = Field(0, description="Seed of the bootstrap: verdicts are reproducible.")
    judge_runs: int = Field(
        3, ge=2, le=20, description="Times the optional LLM judge scores every answer."
    )

    def path(self, value: str, base: Path, home: Path) -> Path:
        """`value` with `${ML_RELEASE_HOME}` expanded, relative to the spec's folder."""
        path = Path(value.replace(HOME_PLACEHOLDER, str(home)))
        return path if path.is_absolute() else (base / path).resolve()
