"""The versioned prompt/config of an LLM application: what a release of it changes.

A `PromptConfig` holds the prompt template, the model name and its parameters, and the
retrieval settings. It is released like a model: written as an artifact (`config.json` plus
`manifest.json`, kind `llm_config`), registered, promoted and rolled back; its `version` is the
registry version and is recorded in the manifest's `extra` and in every ledger event.
"""

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml_release.errors import DataInputError

PLACEHOLDERS = ("{context}", "{question}")


class RetrievalSettings(BaseModel):
    """How passages are retrieved from the corpus for a question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["tfidf", "keyword"] = Field(
        "tfidf",
        description="`tfidf`: cosine of TF-IDF vectors without stop words; `keyword`: raw count "
        "of shared words.",
    )
    top_k: int = Field(3, ge=1, le=50, description="Passages put into the prompt.")


class PromptConfig(BaseModel):
    """One version of an LLM application's prompt and configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Application name: the release spec's model.name.")
    version: str = Field(description="Version label; the registry version of the artifact.")
    model: str = Field(min_length=1, description="Model name sent to the endpoint.")
    system: str = Field("", description="System message.")
    template: str = Field(description="User message with {context} and {question}.")
    params: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Generation parameters (temperature, max_tokens, ...)."
    )
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        missing = [p for p in PLACEHOLDERS if p not in value]
        if missing:
            raise ValueError(f"template lacks {', '.join(missing)}: the answer needs both")
        return value

    def render(self, question: str, contexts: list[str]) -> list[dict[str, str]]:
        """The chat messages sent for `question` with the retrieved `contexts`."""
        context = "\n\n".join(f"[{i + 1}] {text}" for i, text in enumerate(contexts))
        user = self.template.replace("{context}", context).replace("{question}", question)
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": user}]

    def canonical_bytes(self) -> bytes:
        """The config as canonical JSON: what the artifact stores and its digest covers."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2).encode()

    @property
    def digest(self) -> str:
        """sha256 of `canonical_bytes()`."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()


def parse_config(text: str, where: str) -> PromptConfig:
    """A prompt/config from YAML or JSON text; DataInputError naming `where` if invalid."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataInputError(f"{where}: not valid YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataInputError(f"{where}: a prompt/config must be a mapping, not {type(data)}")
    try:
        return PromptConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise DataInputError(
            f"{where} is not a valid prompt/config ({problems}); see docs/llm.md"
        ) from None


def load_config(path: Path) -> PromptConfig:
    """Read a prompt/config file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise DataInputError(f"prompt/config file not found: {path}; check llm.candidate")
    return parse_config(path.read_text(encoding="utf-8"), str(path))
