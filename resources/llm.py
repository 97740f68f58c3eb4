"""The `llm_client` resource: answers from an OpenAI-compatible endpoint or from recordings.

Both implementations hand `ml_release.llm` a client with the same interface; the endpoint one
can also hand it an LLM judge. The key comes only through `EnvVar`.
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_release.llm.clients import LLMClient, OpenAICompatibleClient, ReplayClient
from ml_release.llm.judge import FaithfulnessJudge


class ReplayLLMResource(dg.ConfigurableResource):
    """Recorded answers: `<responses_dir>/<prompt version>.jsonl` (offline, reproducible)."""

    responses_dir: str = Field(description="Folder of recorded answers, one file per version.")

    def client(self) -> LLMClient:
        """The replay client."""
        return ReplayClient(Path(self.responses_dir))

    def judge(self) -> FaithfulnessJudge | None:
        """No judge: recordings cannot judge."""
        return None


class OpenAICompatibleLLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible endpoint, streamed (TTFT, latency and usage measured per answer)."""

    base_url: str = Field(description="Endpoint base URL, e.g. http://127.0.0.1:8000/v1.")
    api_key: str = Field("", description="API key; set it with dg.EnvVar, never inline.")
    model: str = Field("", description="Overrides the prompt/config's model name when set.")
    timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout.")
    judge_model: str = Field(
        "", description="Model that judges faithfulness (llm_judge_faithfulness); empty: none."
    )

    def client(self) -> LLMClient:
        """The streaming client."""
        return OpenAICompatibleClient(self.base_url, self.api_key, self.timeout_seconds, self.model)

    def judge(self) -> FaithfulnessJudge | None:
        """The ragas Faithfulness judge on this endpoint, when a judge model is set."""
        if not self.judge_model:
            return None
        return FaithfulnessJudge(
            self.base_url, self.api_key, self.judge_model, self.timeout_seconds
        )


def llm_resource(responses_dir: Path | None) -> dg.ConfigurableResource:
    """The endpoint when `ML_RELEASE_LLM_BASE_URL` is set, else the recorded answers."""
    if os.environ.get("ML_RELEASE_LLM_BASE_URL"):
        return OpenAICompatibleLLMResource(
            base_url=dg.EnvVar("ML_RELEASE_LLM_BASE_URL"),
            api_key=dg.EnvVar("ML_RELEASE_LLM_API_KEY")
            if os.environ.get("ML_RELEASE_LLM_API_KEY")
            else "",
            model=os.environ.get("ML_RELEASE_LLM_MODEL", ""),
            judge_model=os.environ.get("ML_RELEASE_LLM_JUDGE_MODEL", ""),
        )
    return ReplayLLMResource(responses_dir=str(responses_dir or ""))
