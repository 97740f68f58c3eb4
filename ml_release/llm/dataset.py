"""The RAG set: a document corpus, questions with reference answers and contexts, and routes.

A dataset folder holds:
- `corpus.jsonl`: one passage per line, `{"id", "title", "text"}`;
- `questions.jsonl`: `{"id", "route", "question", "reference", "reference_context_ids",
  "schema"}`, where `schema` names `schemas/<schema>.json` for a structured route (answers must
  be JSON matching it) and is null otherwise;
- `schemas/*.json`: JSON Schemas.

`Retriever` ranks passages for a question with the settings of a prompt/config.
"""

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ml_release.errors import DataInputError
from ml_release.llm.config import RetrievalSettings
from ml_release.llm.text import content_terms, words

CORPUS_FILE = "corpus.jsonl"
QUESTIONS_FILE = "questions.jsonl"
SCHEMAS_DIR = "schemas"


@dataclass(frozen=True)
class Passage:
    """One passage of the corpus."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    """One evaluation question with its references."""

    id: str
    route: str
    question: str
    reference: str
    reference_context_ids: tuple[str, ...]
    schema: str | None = None


@dataclass
class RagSet:
    """The corpus, the questions and the schemas of structured routes."""

    passages: dict[str, Passage]
    questions: list[Question]
    schemas: dict[str, dict] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def routes(self) -> list[str]:
        """Route names, in first-seen order."""
        return list(dict.fromkeys(q.route for q in self.questions))

    def reference_contexts(self, question: Question) -> list[str]:
        """The texts of a question's reference passages."""
        return [self.passages[i].text for i in question.reference_context_ids]


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataInputError(f"{path} not found: a RAG set folder needs it (see docs/llm.md)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataInputError(f"{path}:{number}: each line must be a JSON object")
        rows.append(row)
    if not rows:
        raise DataInputError(f"{path} is empty: it needs at least one row")
    return rows


def _field(row: dict, key: str, path: Path, number: int, kind: type = str):
    value = row.get(key)
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise DataInputError(
            f"{path} row {number}: `{key}` must be a non-empty {kind.__name__}, got {value!r}"
        )
    return value


def load_rag_set(folder: Path) -> RagSet:
    """Read and validate a RAG set folder; DataInputError naming the file, row and key."""
    folder = Path(folder)
    digest = hashlib.sha256()
    passages: dict[str, Passage] = {}
    corpus_path = folder / CORPUS_FILE
    for number, row in enumerate(_read_jsonl(corpus_path), start=1):
        pid = _field(row, "id", corpus_path, number)
        if pid in passages:
            raise DataInputError(f"{corpus_path} row {number}: duplicate passage id {pid!r}")
        passages[pid] = Passage(
            pid, str(row.get("title", "")), _field(row, "text", corpus_path, number)
        )
    schemas = {}
    for path in sorted((folder / SCHEMAS_DIR).glob("*.json")):
        try:
            schemas[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataInputError(f"{path}: not valid JSON ({exc.msg})") from None
    questions, seen = [], set()
    questions_path = folder / QUESTIONS_FILE
    for number, row in enumerate(_read_jsonl(questions_path), start=1):
        qid = _field(row, "id", questions_path, number)
        if qid in seen:
            raise DataInputError(f"{questions_path} row {number}: duplicate question id {qid!r}")
        seen.add(qid)
        refs = tuple(_field(row, "reference_context_ids", questions_path, number, list))
        unknown = [r for r in refs if r not in passages]
        if unknown or not refs:
            raise DataInputError(
                f"{questions_path} row {number}: reference_context_ids {list(refs)} must name "
                f"passages of {CORPUS_FILE}; unknown: {unknown}"
            )
        schema = row.get("schema")
        if schema is not None and schema not in schemas:
            raise DataInputError(
                f"{questions_path} row {number}: schema {schema!r} has no file "
                f"{SCHEMAS_DIR}/{schema}.json; known: {sorted(schemas)}"
            )
        questions.append(
            Question(
                qid,
                _field(row, "route", questions_path, number),
                _field(row, "question", questions_path, number),
                _field(row, "reference", questions_path, number),
                refs,
                schema,
            )
        )
    for path in (corpus_path, questions_path, *sorted((folder / SCHEMAS_DIR).glob("*.json"))):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return RagSet(passages, questions, schemas, digest.hexdigest())


class Retriever:
    """Ranks the corpus's passages for a question, deterministically (ties: corpus order)."""

    def __init__(self, passages: dict[str, Passage]) -> None:
        self._ids = list(passages)
        self._terms = [Counter(content_terms(p.title + " " + p.text)) for p in passages.values()]
        self._raw = [Counter(words(p.title + " " + p.text)) for p in passages.values()]
        df = Counter(t for terms in self._terms for t in terms)
        n = len(self._ids)
        self._idf = {t: math.log((1 + n) / (1 + d)) + 1.0 for t, d in df.items()}
        self._norms = [
            math.sqrt(sum((c * self._idf[t]) ** 2 for t, c in terms.items())) or 1.0
            for terms in self._terms
        ]

    def retrieve(self, question: str, settings: RetrievalSettings) -> list[str]:
        """The ids of the `top_k` best passages for `question`."""
        if settings.method == "keyword":
            asked = set(words(question))
            scores = [sum(c for w, c in raw.items() if w in asked) for raw in self._raw]
        else:
            query = Counter(content_terms(question))
            scores = [
                sum(
                    q * self._idf.get(t, 0.0) * terms.get(t, 0) * self._idf.get(t, 0.0)
                    for t, q in query.items()
                )
                / norm
                for terms, norm in zip(self._terms, self._norms, strict=True)
            ]
        order = sorted(range(len(self._ids)), key=lambda i: (-scores[i], i))
        return [self._ids[i] for i in order[: settings.top_k]]
