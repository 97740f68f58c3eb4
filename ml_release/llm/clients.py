"""Generation: the answers of one prompt/config version, with tokens and timings.

Two clients answer the same `GenerationRequest`s:

- `OpenAICompatibleClient` sends each request to an OpenAI-compatible `/v1/chat/completions`
  endpoint with `stream=True` and `stream_options={"include_usage": True}`, and measures the
  time to the first content token and the total latency on this machine; token counts come
  from the usage chunk the endpoint sends last.
- `ReplayClient` reads recorded answers from `<responses>/<version>.jsonl` (one object per line:
  `question_id`, `answer`, `prompt_tokens`, `completion_tokens`, `ttft_ms`, `latency_ms`), for
  teams that generate elsewhere and for offline use.

A missing answer, a missing usage chunk or a failed request raises: an answer that was never
generated is not scored as a bad one.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ml_release.errors import DataInputError, ReleaseError
from ml_release.llm.config import PromptConfig

RECORD_FIELDS = ("question_id", "answer", "prompt_tokens", "completion_tokens", "ttft_ms")


class GenerationError(ReleaseError):
    """The endpoint did not answer, or answered without what the gates need."""


@dataclass(frozen=True)
class GenerationRequest:
    """One question to answer, with the messages the prompt/config renders for it."""

    question_id: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Generation:
    """One answer with its token usage and timings (milliseconds)."""

    question_id: str
    answer: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    latency_ms: float


class LLMClient(Protocol):
    """Answers requests with one prompt/config version."""

    def generate(self, config: PromptConfig, requests: list[GenerationRequest]) -> list[Generation]:
        """One generation per request, in order."""
        ...


def _record(row: dict, where: str) -> Generation:
    missing = [k for k in RECORD_FIELDS if k not in row]
    if missing:
        raise DataInputError(f"{where}: missing {', '.join(missing)} (see docs/llm.md)")
    tokens = (row["prompt_tokens"], row["completion_tokens"])
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
        raise DataInputError(f"{where}: token counts must be integers >= 0, got {tokens}")
    ttft = float(row["ttft_ms"])
    latency = float(row.get("latency_ms", ttft))
    if not (math.isfinite(ttft) and math.isfinite(latency) and 0 <= ttft <= latency):
        raise DataInputError(
            f"{where}: need 0 <= ttft_ms <= latency_ms, finite; got {ttft} and {latency}"
        )
    if not isinstance(row["answer"], str):
        raise DataInputError(f"{where}: `answer` must be a string")
    return Generation(str(row["question_id"]), row["answer"], tokens[0], tokens[1], ttft, latency)


def read_recorded(path: Path) -> dict[str, Generation]:
    """Recorded answers by question id; DataInputError naming the file and line if malformed."""
    if not path.is_file():
        raise DataInputError(
            f"no recorded answers at {path}: record `<version>.jsonl` for this prompt version "
            "into llm.responses, or configure an endpoint (docs/llm.md)"
        )
    out: dict[str, Generation] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataInputError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataInputError(f"{where}: each line must be a JSON object")
        record = _record(row, where)
        if record.question_id in out:
            raise DataInputError(f"{where}: question {record.question_id!r} recorded twice")
        out[record.question_id] = record
    return out


@dataclass(frozen=True)
class ReplayClient:
    """Recorded answers from `<folder>/<version>.jsonl`."""

    folder: Path

    def generate(self, config: PromptConfig, requests: list[GenerationRequest]) -> list[Generation]:
        """The recorded answer of every request, in order."""
        path = Path(self.folder) / f"{config.version}.jsonl"
        recorded = read_recorded(path)
        missing = [r.question_id for r in requests if r.question_id not in recorded]
        if missing:
            raise DataInputError(
                f"{path} has no answer for {len(missing)} questions (first: {missing[0]}): "
                "record every question of the RAG set"
            )
        return [recorded[r.question_id] for r in requests]


@dataclass(frozen=True)
class OpenAICompatibleClient:
    """Streaming chat completions from an OpenAI-compatible endpoint."""

    base_url: str
    api_key: str
    timeout_seconds: float = 60.0
    model: str = ""

    def _client(self):
        from openai import OpenAI

        return OpenAI(
            base_url=self.base_url,
            api_key=self.api_key or "none",
            max_retries=0,
            timeout=self.timeout_seconds,
        )

    def generate(self, config: PromptConfig, requests: list[GenerationRequest]) -> list[Generation]:
        """Each request streamed in turn (one at a time, so timings are not queueing)."""
        client = self._client()
        return [self._one(client, config, request) for request in requests]

    def _one(self, client, config: PromptConfig, request: GenerationRequest) -> Generation:
        from openai import OpenAIError

        model = self.model or config.model
        started = time.perf_counter()
        first, parts, usage = None, [], None
        try:
            stream = client.chat.completions.create(
                model=model,
                messages=request.messages,
                stream=True,
                stream_options={"include_usage": True},
                **config.params,
            )
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        if first is None:
                            first = time.perf_counter()
                        parts.append(text)
        except OpenAIError as exc:
            raise GenerationError(
                f"{self.base_url}: model {model!r} failed on question {request.question_id}: "
                f"{type(exc).__name__}: {str(exc)[:300]}. Check the endpoint and the key."
            ) from exc
        ended = time.perf_counter()
        if usage is None:
            raise GenerationError(
                f"{self.base_url} sent no usage chunk for question {request.question_id}: the "
                "endpoint must support stream_options.include_usage (token gates need it)"
            )
        first = ended if first is None else first
        return Generation(
            request.question_id,
            "".join(parts),
            int(usage.prompt_tokens),
            int(usage.completion_tokens),
            (first - started) * 1000.0,
            (ended - started) * 1000.0,
        )
