"""Benchmark of the LLM evaluation: 1,000 recorded answers per version, against ragas alone.

Both measurements run on the same data: the demo RAG set's questions repeated to `--answers`
questions, with the recorded answers of the production prompt (`support-v1`) and of the bad
candidate (`support-v3`), so every gate has work to do (unsupported statements, broken JSON).

- project: the full evaluation `llm_evaluation_report` runs without Dagster (retrieval, prompt
  rendering, replay, the groundedness proxy, ragas' non-LLM metrics, JSON and schema checks,
  tokens and cost) for both versions, then every gate of examples/rag/release.yaml (paired
  intervals per route, Holm, the p95 bootstrap);
- floor: ragas' non-LLM metrics alone (`NonLLMContextPrecisionWithReference`,
  `NonLLMContextRecall`, `RougeScore`) on the same retrieved contexts, references and answers.

Each is timed with time.perf_counter after imports and data preparation, best of `--repeats`.
Target: project under 2x the floor. See bench/README.md.
"""

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ["RAGAS_DO_NOT_TRACK"] = "true"

from ragas.dataset_schema import SingleTurnSample
from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
from ragas.metrics._context_recall import NonLLMContextRecall
from ragas.metrics.collections import RougeScore

from ml_release.llm.clients import ReplayClient
from ml_release.llm.config import load_config
from ml_release.llm.dataset import Retriever, load_rag_set
from ml_release.llm.evaluate import requests_for
from ml_release.llm.gates import judge, llm_gates
from ml_release.llm.run import evaluate_release
from ml_release.spec import load_spec

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "ml_release" / "demo" / "rag"
SPEC = PROJECT / "examples" / "rag" / "release.yaml"
VERSIONS = ("support-v1", "support-v3")


def scaled_dataset(folder: Path, answers: int) -> Path:
    """The demo RAG set with its questions (and recorded answers) repeated to `answers`."""
    shutil.copytree(DEMO, folder, dirs_exist_ok=True)
    questions = [json.loads(x) for x in (DEMO / "questions.jsonl").read_text().splitlines()]
    rows = [
        {**questions[i % len(questions)], "id": f"{questions[i % len(questions)]['id']}-{i}"}
        for i in range(answers)
    ]
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for version in VERSIONS:
        recorded = {
            r["question_id"]: r
            for r in map(
                json.loads, (DEMO / "responses" / f"{version}.jsonl").read_text().split("\n")[:-1]
            )
        }
        out = [
            {**recorded[questions[i % len(questions)]["id"]], "question_id": rows[i]["id"]}
            for i in range(answers)
        ]
        (folder / "responses" / f"{version}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in out)
        )
    return folder


def project(folder: Path) -> float:
    """Wall time of the full evaluation and every gate."""
    spec = load_spec(SPEC)
    rag = load_rag_set(folder)
    configs = [load_config(folder / "prompts" / f"{v}.yaml") for v in VERSIONS]
    started = time.perf_counter()
    report = evaluate_release(
        rag, configs[1], configs[0], ReplayClient(folder / "responses"), spec.llm
    )
    results = [judge(gate, report, spec) for gate in llm_gates(spec)]
    elapsed = time.perf_counter() - started
    assert len(results) == len(llm_gates(spec))
    return elapsed


def floor(folder: Path) -> float:
    """Wall time of ragas' non-LLM metrics alone on the same inputs."""
    rag = load_rag_set(folder)
    retriever = Retriever(rag.passages)
    replay = ReplayClient(folder / "responses")
    inputs = []
    for version in VERSIONS:
        config = load_config(folder / "prompts" / f"{version}.yaml")
        requests, retrieved = requests_for(rag, config, retriever)
        answers = replay.generate(config, requests)
        for question, answer, ids in zip(rag.questions, answers, retrieved, strict=True):
            sample = SingleTurnSample(
                retrieved_contexts=[rag.passages[i].text for i in ids],
                reference_contexts=rag.reference_contexts(question),
            )
            inputs.append((sample, question.reference, answer.answer))

    async def run() -> None:
        precision, recall = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()
        rouge = RougeScore(rouge_type="rougeL", mode="fmeasure")
        for sample, reference, answer in inputs:
            await precision.single_turn_ascore(sample)
            await recall.single_turn_ascore(sample)
            await rouge.ascore(reference=reference, response=answer)

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def main() -> None:
    """Print both timings and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1000, help="Answers per version.")
    parser.add_argument("--repeats", type=int, default=3, help="Best of this many runs.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = scaled_dataset(Path(temp) / "rag", args.answers)
        floor_s = min(floor(folder) for _ in range(args.repeats))
        project_s = min(project(folder) for _ in range(args.repeats))
    print(
        json.dumps(
            {
                "answers_per_version": args.answers,
                "floor_ragas_non_llm_s": round(floor_s, 3),
                "project_full_evaluation_s": round(project_s, 3),
                "ratio": round(project_s / floor_s, 3),
                "target": "ratio < 2",
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
