"""Builds the demo RAG set and its recorded answers, deterministically from a seed.

`python -m ml_release.demo.rag.build` rewrites the files shipped beside this module:
`corpus.jsonl`, `questions.jsonl`, `schemas/ticket.json`, `prompts/support-v*.yaml` and
`responses/support-v*.jsonl`. Three prompt versions answer the same questions:

- `support-v1`, production: short answers taken from the retrieved passage;
- `support-v2`, a good candidate: the same retrieval, answers that add a supported detail;
- `support-v3`, a bad candidate: keyword retrieval, verbose answers with unsupported claims,
  about 40 % more output tokens, a slower first token, and JSON that sometimes breaks.
"""

import json
import math
from pathlib import Path

import numpy as np
import yaml

from ml_release.llm.config import PromptConfig
from ml_release.llm.dataset import Passage, Retriever, load_rag_set
from ml_release.llm.text import words

HERE = Path(__file__).resolve().parent
APP = "support_assistant"

# route: (entities, [(claim, question, value range, note)], how the route's answers end)
FACTS = {
    "billing": (
        ["Basic plan", "Standard plan", "Team plan", "Business plan"],
        [
            (
                "costs {n} dollars per month",
                "How much does the {e} cost per month?",
                (5, 90),
                "Prices exclude local taxes and are charged monthly.",
            ),
            (
                "allows refund requests within {n} days of a charge",
                "Within how many days can I ask for a refund on the {e}?",
                (7, 60),
                "Refunds go back to the original payment method.",
            ),
            (
                "gives a {n} percent discount for annual billing",
                "What discount does the {e} give for annual billing?",
                (5, 30),
                "The discount is applied when the yearly invoice is issued.",
            ),
            (
                "includes {n} user seats",
                "How many user seats does the {e} include?",
                (1, 250),
                "Extra seats can be bought one at a time.",
            ),
        ],
        "Billing questions are handled on the billing page of the admin console.",
    ),
    "account": (
        ["password reset link", "verification code", "invitation link", "recovery key"],
        [
            (
                "expires after {n} minutes",
                "After how many minutes does the {e} expire?",
                (5, 90),
                "Expired items must be requested again.",
            ),
            (
                "can be requested {n} times per day",
                "How many times per day can the {e} be requested?",
                (2, 12),
                "Counters reset at midnight in the workspace time zone.",
            ),
            (
                "is sent within {n} seconds of the request",
                "How quickly is the {e} sent after the request?",
                (5, 60),
                "Delivery may take longer when the mail provider filters messages.",
            ),
            (
                "locks the account after {n} wrong attempts",
                "After how many wrong attempts does the {e} lock the account?",
                (3, 10),
                "An administrator can unlock it from the members list.",
            ),
        ],
        "Account security settings are managed by the workspace owner.",
    ),
    "storage": (
        ["photo folder", "backup vault", "shared drive", "archive tier"],
        [
            (
                "keeps deleted files for {n} days",
                "How long does the {e} keep deleted files?",
                (7, 120),
                "Files can be restored from the trash view during that time.",
            ),
            (
                "holds up to {n} gigabytes",
                "How much data can the {e} hold?",
                (10, 900),
                "Uploads stop once the quota is reached.",
            ),
            (
                "syncs every {n} minutes",
                "How often does the {e} sync?",
                (1, 45),
                "A manual sync can be started from the toolbar.",
            ),
            (
                "keeps {n} older versions of each file",
                "How many older versions of each file does the {e} keep?",
                (3, 40),
                "Older versions are listed in the file history panel.",
            ),
        ],
        "Storage limits can be raised by contacting the sales team.",
    ),
}
TICKETS = [
    ("duplicate charge", "billing", "high"),
    ("invoice address change", "billing", "low"),
    ("failed card payment", "billing", "high"),
    ("tax number on invoices", "billing", "normal"),
    ("locked account", "account", "high"),
    ("missing verification email", "account", "normal"),
    ("owner transfer", "account", "normal"),
    ("display name change", "account", "low"),
    ("lost files", "storage", "high"),
    ("slow sync", "storage", "normal"),
    ("quota warning", "storage", "low"),
    ("corrupted download", "storage", "high"),
    ("shared link not opening", "storage", "normal"),
    ("refund status", "billing", "normal"),
    ("two-factor device lost", "account", "high"),
    ("folder permissions", "storage", "low"),
]
TICKET_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
    "properties": {
        "category": {"enum": ["billing", "account", "storage"]},
        "priority": {"enum": ["low", "normal", "high"]},
        "summary": {"type": "string", "minLength": 3, "maxLength": 120},
    },
}
UNSUPPORTED = [
    "This rule was introduced last year and applies to every customer in all regions.",
    "Premium members always receive twice this amount at no extra charge.",
    "Our partners guarantee the same terms for a period of 24 months.",
    "Most users find that upgrading to a higher tier solves this immediately.",
]
TEMPLATE = (
    "Answer the question using only the context below. {style}\n\n"
    "Context:\n{context}\n\nQuestion: {question}"
)


def prompts() -> dict[str, PromptConfig]:
    """The three prompt versions of the demo."""
    common = {"name": APP, "model": "demo-chat-small", "system": "You are a support assistant."}
    return {
        "support-v1": PromptConfig(
            version="support-v1",
            template=TEMPLATE.replace("{style}", "Be brief."),
            params={"temperature": 0.0, "max_tokens": 200},
            retrieval={"method": "tfidf", "top_k": 3},
            **common,
        ),
        "support-v2": PromptConfig(
            version="support-v2",
            template=TEMPLATE.replace("{style}", "Be brief and name where to act."),
            params={"temperature": 0.0, "max_tokens": 200},
            retrieval={"method": "tfidf", "top_k": 3},
            **common,
        ),
        "support-v3": PromptConfig(
            version="support-v3",
            template=TEMPLATE.replace("{style}", "Be thorough and friendly, add useful advice."),
            params={"temperature": 0.7, "max_tokens": 600},
            retrieval={"method": "keyword", "top_k": 1},
            **common,
        ),
    }


def rag_rows(seed: int = 7) -> tuple[list[dict], list[dict]]:
    """(passages, questions) of the demo RAG set."""
    rng = np.random.default_rng(seed)
    passages, questions = [], []
    for route, (entities, attributes, note) in FACTS.items():
        for e_index, entity in enumerate(entities):
            for a_index, (claim, question, (low, high), detail) in enumerate(attributes):
                n = int(rng.integers(low, high + 1))
                pid = f"{route}-{e_index}{a_index}"
                fact = f"The {entity} {claim.format(n=n)}."
                passages.append({"id": pid, "title": entity, "text": f"{fact} {detail} {note}"})
                questions.append(
                    {
                        "id": f"q-{pid}",
                        "route": route,
                        "question": question.format(e=entity),
                        "reference": fact,
                        "reference_context_ids": [pid],
                        "schema": None,
                    }
                )
    for index, (topic, category, priority) in enumerate(TICKETS):
        pid = f"ticket-{index:02d}"
        passages.append(
            {
                "id": pid,
                "title": f"ticket policy: {topic}",
                "text": f"Tickets about {topic} use the category {category} and the priority "
                f"{priority}. The summary names the {topic} in a few words.",
            }
        )
        reference = {"category": category, "priority": priority, "summary": topic}
        questions.append(
            {
                "id": f"q-{pid}",
                "route": "ticket",
                "question": f"Open a support ticket as JSON for this message: I have a problem "
                f"with a {topic}.",
                "reference": json.dumps(reference),
                "reference_context_ids": [pid],
                "schema": "ticket",
            }
        )
    return passages, questions


def approx_tokens(text: str) -> int:
    """A stand-in tokenizer for recorded answers: about 1.3 tokens per word."""
    return max(1, math.ceil(len(words(text)) * 1.3))


def _ticket_answer(reference: dict, version: str, index: int) -> str:
    if version == "support-v3" and index % 3 == 0:
        return "Here is the ticket: " + json.dumps(reference)  # not JSON any more
    if version == "support-v3" and index % 3 == 1:
        return json.dumps({**reference, "priority": "urgent"})  # outside the schema
    return json.dumps(reference)


def _answer(question: dict, version: str, index: int, contexts: list[str], note: str) -> str:
    if question["schema"]:
        return _ticket_answer(json.loads(question["reference"]), version, index)
    fact = question["reference"]
    if version == "support-v1":
        return fact
    if version == "support-v2":
        return f"In short, {fact[0].lower()}{fact[1:]}" if index % 2 else fact
    extra = UNSUPPORTED[index % len(UNSUPPORTED)]
    return f"Great question! {fact} {extra} Let me know if there is anything else I can do."


def recorded_answers(
    config: PromptConfig, passages: list[dict], questions: list[dict], seed: int
) -> list[dict]:
    """Recorded answers of one prompt version, with token counts and timings."""
    rng = np.random.default_rng(seed)
    by_id = {p["id"]: p for p in passages}
    retriever = Retriever({p["id"]: Passage(p["id"], p["title"], p["text"]) for p in passages})
    notes = {route: note for route, (_e, _a, note) in FACTS.items()}
    slow = 1.3 if config.version == "support-v3" else 1.0
    rows = []
    for index, question in enumerate(questions):
        ids = retriever.retrieve(question["question"], config.retrieval)
        contexts = [by_id[i]["text"] for i in ids]
        messages = config.render(question["question"], contexts)
        answer = _answer(
            question, config.version, index, contexts, notes.get(question["route"], "")
        )
        prompt_tokens = sum(approx_tokens(m["content"]) + 4 for m in messages)
        completion_tokens = approx_tokens(answer)
        # Shared per-question base: the same endpoint and load for every version.
        base = np.random.default_rng(seed * 1000 + index).lognormal(math.log(320), 0.25)
        ttft = base * slow * (1 + rng.normal(0, 0.02))
        latency = ttft + completion_tokens * 18.0 * (1 + rng.normal(0, 0.02))
        rows.append(
            {
                "question_id": question["id"],
                "answer": answer,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "ttft_ms": round(float(ttft), 2),
                "latency_ms": round(float(latency), 2),
            }
        )
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def write_demo(folder: Path = HERE, seed: int = 7) -> None:
    """Write the demo RAG set, prompts and recorded answers into `folder`."""
    passages, questions = rag_rows(seed)
    _write_jsonl(folder / "corpus.jsonl", passages)
    _write_jsonl(folder / "questions.jsonl", questions)
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    (folder / "schemas" / "ticket.json").write_text(json.dumps(TICKET_SCHEMA, indent=2) + "\n")
    for version, config in prompts().items():
        (folder / "prompts").mkdir(parents=True, exist_ok=True)
        (folder / "prompts" / f"{version}.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        )
        _write_jsonl(
            folder / "responses" / f"{version}.jsonl",
            recorded_answers(config, passages, questions, seed),
        )
    load_rag_set(folder)  # what was written must load


if __name__ == "__main__":
    write_demo()
