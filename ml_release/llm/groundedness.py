"""The groundedness proxy: the share of an answer's statements supported by the retrieved context.

Deterministic, no model involved:

1. The answer is split into statements: sentences of prose; for an answer that parses as a JSON
   object, one statement per leaf, `"<key> <value>"`.
2. A statement's claim is its content terms: lower-cased words and numbers without stop words,
   lightly stemmed (`refunds` -> `refund`). Statements with fewer than `MIN_TERMS` terms
   ("Great question!") claim nothing checkable and are skipped.
3. A statement is supported when every number it states appears in the context and at least
   `support_threshold` of its terms appear in the context. Padding such as "Let me know if
   there is anything else I can do." is a statement the context does not support.
4. The answer's groundedness is supported / checkable statements; an answer with no checkable
   statement scores 1 (it asserts nothing the context could contradict).

This catches invented facts and numbers and padding with claims from outside the context; it
does not catch a contradiction phrased with the context's own words (a judge is needed there).
"""

import json
import re
from dataclasses import dataclass, field

from ml_release.llm.text import content_terms, is_number

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_TERMS = 3
SUPPORT_THRESHOLD = 0.8


@dataclass(frozen=True)
class StatementCheck:
    """One statement and whether the context supports it."""

    statement: str
    supported: bool
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Groundedness:
    """The proxy's reading of one answer."""

    score: float
    checks: list[StatementCheck] = field(default_factory=list)

    @property
    def unsupported(self) -> list[StatementCheck]:
        """The statements the context does not support."""
        return [c for c in self.checks if not c.supported]

    def why(self, limit: int = 3) -> str:
        """The unsupported statements and their missing terms, for people."""
        return "; ".join(
            f'"{c.statement}" (not in context: {", ".join(c.missing)})'
            for c in self.unsupported[:limit]
        )


def _leaves(value: object, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _leaves(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v, key)]
    return [f"{key} {value}".strip()]


def statements(answer: str) -> list[str]:
    """The answer's statements: JSON leaves for a JSON object, else its sentences."""
    text = answer.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return _leaves(parsed)
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def groundedness(
    answer: str, contexts: list[str], support_threshold: float = SUPPORT_THRESHOLD
) -> Groundedness:
    """The share of `answer`'s checkable statements supported by `contexts`."""
    context_terms = set(content_terms(" ".join(contexts)))
    checks = []
    for statement in statements(answer):
        terms = list(dict.fromkeys(content_terms(statement)))
        if len(terms) < MIN_TERMS:
            continue
        missing = tuple(t for t in terms if t not in context_terms)
        numbers_missing = any(is_number(t) for t in missing)
        covered = 1 - len(missing) / len(terms)
        supported = not numbers_missing and covered >= support_threshold
        checks.append(StatementCheck(statement, supported, missing))
    if not checks:
        return Groundedness(1.0, [])
    return Groundedness(sum(c.supported for c in checks) / len(checks), checks)
