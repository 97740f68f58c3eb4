"""The failure modes of LLM coverage: how each injects one fault into the control's answers.

Each mode (`LLM_MODES`) takes the bench (`LLMBench`: the RAG set, production's prompt/config
and answers, the control's answers) and a strength, and returns the faulty candidate's answers;
the runner (`ml_release.coverage.llm`) gates them. A stronger injection hits the answers a
weaker one hit, and more, so a sweep is monotone.
"""

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ml_release.errors import SpecError
from ml_release.llm.config import PromptConfig
from ml_release.llm.dataset import RagSet
from ml_release.llm.text import content_terms

FAMILY = ("llm",)
# Gates that recorded answers cannot feed: the judge re-reads every answer through an endpoint.
NOT_REPLAYABLE = ("llm_judge_faithfulness",)
# Sentences that claim nothing checkable (fewer than three content terms): padding that the
# groundedness proxy skips, so a token rise is not also read as ungrounded answers.
FILLER = ("Happy to help.", "Hope this helps.", "Thanks for asking.", "Glad to help.")
NUMBER_IN_TEXT = re.compile(r"(?<![\w.,])[0-9]+(?![\w]|[.,][0-9])")
JITTER = 0.01  # the control's timings: production's, each answer x (1 +- at most 1 %)


@dataclass
class LLMBench:
    """What every mode starts from: the RAG set, production's prompt/config and answers."""

    rag: RagSet
    config: PromptConfig  # production, copied under a new label for every candidate
    production: list[dict]  # production's answers, one record per question in RAG-set order
    contexts: list[str]  # the text retrieved for each question, joined
    control: list[dict] = field(default_factory=list)  # production's answers, timings jittered

    def indices(self, structured: bool) -> list[int]:
        """Positions of the structured (JSON) or of the free-text questions."""
        return [i for i, q in enumerate(self.rag.questions) if (q.schema is not None) == structured]

    def pick(self, indices: list[int], share: float, salt: str) -> list[int]:
        """At least `share` of `indices` (one at least), the same order at every strength.

        A fixed permutation per mode: a stronger injection hits the answers a weaker one hit,
        and more, so a sweep is monotone.
        """
        if share <= 0 or not indices:
            return []
        count = min(len(indices), max(1, math.ceil(share * len(indices) - 1e-9)))
        seed = int.from_bytes(salt.encode(), "little") % 2**32
        order = np.random.default_rng(seed).permutation(len(indices))
        return sorted(indices[i] for i in order[:count])


@dataclass(frozen=True)
class LLMFailureMode:
    """One way an LLM release goes wrong, at a documented default strength."""

    name: str
    title: str
    strength: float
    unit: str
    inject: Callable[[LLMBench, float], list[dict]]  # the control's answers -> the faulty ones
    sweep: tuple[float, ...] = ()  # strengths tried by --sweep, weakest first
    structured: bool = False  # applies only when the RAG set has structured (JSON) routes

    def describe(self, strength: float | None = None) -> str:
        """Title and strength, as the matrix prints them."""
        value = self.strength if strength is None else strength
        return f"{self.title} ({value:g} {self.unit})" if self.unit else self.title


def _copy(bench: LLMBench) -> list[dict]:
    return [dict(record) for record in bench.control]


def _invented_number(original: str, context: str, taken: set[str]) -> str:
    """A number near `original` that the retrieved context does not contain."""
    value = int(original)
    for step in range(7, 10_000, 6):
        candidate = str(value + step)
        if candidate not in taken and candidate not in context:
            return candidate
    return str(value + 10_007)


def _ungrounded(bench: LLMBench, share: float) -> list[dict]:
    """Numbers of free-text answers replaced by invented ones; no number: a claim appended."""
    answers = _copy(bench)
    for i in bench.pick(bench.indices(structured=False), share, "ungrounded_answers"):
        record, context = answers[i], bench.contexts[i]
        terms = set(content_terms(context))
        numbers = NUMBER_IN_TEXT.findall(record["answer"])
        if numbers:
            invented = {n: _invented_number(n, context, terms) for n in dict.fromkeys(numbers)}
            record["answer"] = NUMBER_IN_TEXT.sub(
                lambda m, swap=invented: swap[m.group(0)], record["answer"]
            )
            continue
        number = _invented_number("40", context, terms)
        claim = f"Every customer also receives {number} bonus credits through the partner scheme."
        text = record["answer"].rstrip()
        record["answer"] = text + ("" if text.endswith((".", "!", "?")) else ".") + " " + claim
        record["completion_tokens"] += len(claim.split()) + 1
    return answers


def _truncated(text: str) -> str:
    """`text` cut after its last complete field (or before its last character).

    A generation that stopped between two fields: not JSON any more, but no word is cut in
    half, so the groundedness proxy reads the same claims and only the JSON gates should see it.
    """
    text = text.rstrip()
    cut = text.rfind(",")
    return text[: cut + 1] if cut > 0 else text[:-1]


def _broken_json(bench: LLMBench, share: float) -> list[dict]:
    """Structured answers truncated (a generation that stopped early): not JSON any more."""
    answers = _copy(bench)
    for i in bench.pick(bench.indices(structured=True), share, "broken_json"):
        answers[i]["answer"] = _truncated(answers[i]["answer"])
    return answers


def _schema_violation(bench: LLMBench, share: float) -> list[dict]:
    """Structured answers still JSON but without a field the route's schema requires."""
    answers = _copy(bench)
    for i in bench.pick(bench.indices(structured=True), share, "schema_violation"):
        schema = bench.rag.schemas[bench.rag.questions[i].schema]
        try:
            value = json.loads(answers[i]["answer"])
        except json.JSONDecodeError:
            continue  # production's answer is broken already: nothing to take away
        if not isinstance(value, dict) or not value:
            continue
        required = [k for k in schema.get("required", []) if k in value]
        del value[(required or list(value))[0]]
        answers[i]["answer"] = json.dumps(value)
    return answers


def _filler(words: int) -> str:
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(FILLER[len(out) % len(FILLER)])
    return " ".join(out)


def _token_rise(bench: LLMBench, increase: float) -> list[dict]:
    """Completion tokens x (1 + increase) on every answer; the text padded to match.

    Free text gets sentences that claim nothing checkable ("Happy to help."), JSON answers
    trailing whitespace (still valid JSON): the quality and structure gates should not see it.
    """
    answers = _copy(bench)
    structured = set(bench.indices(structured=True))
    for i, record in enumerate(answers):
        extra = round(record["completion_tokens"] * increase)
        if extra <= 0:
            continue
        record["completion_tokens"] += extra
        if i in structured:
            record["answer"] = record["answer"].rstrip() + "\n" * extra
        else:
            record["answer"] = record["answer"].rstrip() + " " + _filler(extra)
    return answers


def _slower_first_token(bench: LLMBench, increase: float) -> list[dict]:
    """Time to first token x (1 + increase) on every answer; latency grows by the same time."""
    answers = _copy(bench)
    for record in answers:
        added = record["ttft_ms"] * increase
        record["ttft_ms"] = round(record["ttft_ms"] + added, 2)
        record["latency_ms"] = round(record["latency_ms"] + added, 2)
    return answers


LLM_MODES: tuple[LLMFailureMode, ...] = (
    LLMFailureMode(
        "ungrounded_answers",
        "ungrounded answers: invented numbers",
        0.25,
        "of free-text answers",
        _ungrounded,
        (0.02, 0.05, 0.1, 0.25, 0.5),
    ),
    LLMFailureMode(
        "broken_json",
        "broken JSON: structured answers truncated",
        0.25,
        "of structured answers",
        _broken_json,
        (0.05, 0.1, 0.25, 0.5),
        structured=True,
    ),
    LLMFailureMode(
        "schema_violation",
        "schema violation: a required field missing",
        0.25,
        "of structured answers",
        _schema_violation,
        structured=True,
    ),
    LLMFailureMode(
        "token_usage_rise",
        "token-usage rise: padded answers",
        0.5,
        "relative rise of completion tokens",
        _token_rise,
        (0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
    ),
    LLMFailureMode(
        "slower_first_token",
        "slower first token",
        1.0,
        "relative rise of time to first token",
        _slower_first_token,
        (0.05, 0.1, 0.25, 0.5, 1.0),
    ),
)
LLM_BY_NAME = {mode.name: mode for mode in LLM_MODES}


def applicable_llm(
    rag: RagSet, names: list[str] | None = None
) -> tuple[list[LLMFailureMode], dict[str, str]]:
    """The LLM modes to run (all, or `names`), and why the others do not apply."""
    if names:
        unknown = [n for n in names if n not in LLM_BY_NAME]
        if unknown:
            raise SpecError(
                f"unknown LLM failure mode(s) {', '.join(unknown)}; use: {', '.join(LLM_BY_NAME)}"
            )
    has_structured = any(q.schema is not None for q in rag.questions)
    chosen, skipped = [], {}
    for mode in LLM_MODES:
        if names and mode.name not in names:
            continue
        if mode.structured and not has_structured:
            skipped[mode.name] = "the RAG set has no structured route (no question names a schema)"
            continue
        chosen.append(mode)
    return chosen, skipped
