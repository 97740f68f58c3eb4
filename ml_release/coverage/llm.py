"""Coverage for LLM applications (`model.task: llm`): recorded answers with one injected fault.

The release of an LLM application gates a prompt/config against production's answers to the
same questions. A coverage run builds that situation in a scratch home under the run's folder:

- **production**: the spec's prompt/config (`llm.candidate`) is stored and made production in
  the scratch registry; its answers are its recorded ones (`llm.responses/<version>.jsonl`),
  or, with an endpoint configured and no recording, generated once through the endpoint;
- **the control**: the same prompt/config under a new version label, answering with
  production's own answers (timings jittered by at most 1 %, so the comparisons are not
  degenerate). It must pass every gate;
- **one candidate per failure mode**: the control's answers with one fault injected (below),
  under its own version label.

Every run goes through the real LLM release graph (`release` job, in-process, on an ephemeral
Dagster instance) with a replay client over the scratch answers, so the verdicts are the real
gates'. Configs, answers, registry and warehouse live under the run's folder, which is removed
at the end; the spec's own recordings and the real registry are only read (the recordings) or
never opened (the registry).
"""

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml_release.coverage.run import (
    CONTROL,
    CoverageResult,
    ModeRun,
    ReleaseExecutor,
    gate_columns,
    promote_baseline,
    restore_registry,
    run_modes,
    save_registry,
    scratch_environment,
)
from ml_release.errors import DataInputError, SpecError
from ml_release.home import artifacts_dir, registry_path, release_home
from ml_release.llm.clients import Generation, read_recorded
from ml_release.llm.config import PromptConfig, load_config
from ml_release.llm.dataset import RagSet, Retriever, load_rag_set
from ml_release.llm.text import content_terms
from ml_release.spec import ReleaseSpec

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


def _record(generation: Generation) -> dict:
    return {
        "question_id": generation.question_id,
        "answer": generation.answer,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "ttft_ms": generation.ttft_ms,
        "latency_ms": generation.latency_ms,
    }


def production_answers(spec: ReleaseSpec, rag: RagSet, config: PromptConfig) -> list[dict]:
    """`config`'s recorded answers; without a recording, generated once through the endpoint.

    Raises:
        DataInputError: No recording of `config.version` and no endpoint configured.
    """
    llm = spec.llm
    folder = llm.path(llm.responses, spec.source.parent, release_home()) if llm.responses else None
    path = folder / f"{config.version}.jsonl" if folder else None
    if (path is not None and path.is_file()) or not os.environ.get("ML_RELEASE_LLM_BASE_URL"):
        if path is None:
            raise DataInputError(
                f"{spec.source}: coverage needs production's answers: set llm.responses to a "
                f"folder with {config.version}.jsonl, or configure an endpoint (docs/llm.md)"
            )
        recorded = read_recorded(path)
        missing = [q.id for q in rag.questions if q.id not in recorded]
        if missing:
            raise DataInputError(
                f"{path} has no answer for {len(missing)} questions (first: {missing[0]}): "
                "record every question of the RAG set"
            )
        return [_record(recorded[q.id]) for q in rag.questions]
    from ml_release.llm.clients import OpenAICompatibleClient
    from ml_release.llm.evaluate import requests_for

    client = OpenAICompatibleClient(
        os.environ["ML_RELEASE_LLM_BASE_URL"],
        os.environ.get("ML_RELEASE_LLM_API_KEY", ""),
        model=os.environ.get("ML_RELEASE_LLM_MODEL", ""),
    )
    requests, _ids = requests_for(rag, config, Retriever(rag.passages))
    return [_record(g) for g in client.generate(config, requests)]


def prepare_llm(spec: ReleaseSpec, seed: int = 11) -> LLMBench:
    """Read the RAG set and production's answers once; jitter the control's timings."""
    llm = spec.llm
    rag = load_rag_set(llm.path(llm.dataset, spec.source.parent, release_home()))
    config = load_config(llm.path(llm.candidate, spec.source.parent, release_home()))
    retriever = Retriever(rag.passages)
    contexts = [
        " ".join(rag.passages[i].text for i in retriever.retrieve(q.question, config.retrieval))
        for q in rag.questions
    ]
    bench = LLMBench(rag, config, production_answers(spec, rag, config), contexts)
    factors = 1 + np.random.default_rng(seed).uniform(-JITTER, JITTER, len(bench.production))
    for record, factor in zip(bench.production, factors, strict=True):
        bench.control.append(
            {
                **record,
                "ttft_ms": round(record["ttft_ms"] * factor, 2),
                "latency_ms": round(record["latency_ms"] * factor, 2),
            }
        )
    return bench


def _check_answers(records: list[dict], mode: str) -> None:
    """An injected answer set still reads as a recording (a bug here is not a caught mode)."""
    for record in records:
        if not 0 <= record["ttft_ms"] <= record["latency_ms"] or record["completion_tokens"] < 0:
            raise AssertionError(f"{mode}: injected a record the replay client rejects: {record}")


class LLMRunner:
    """Runs the LLM release graph for the control and for each mode in one scratch home."""

    def __init__(
        self,
        spec: ReleaseSpec,
        workdir: Path,
        execute: ReleaseExecutor,
        progress: Callable[[str], None] = lambda message: None,
    ):
        self.spec, self.workdir, self.progress = spec, workdir, progress
        self.execute = execute
        self.home = workdir / "home"
        self.responses = workdir / "responses"
        self.configs = workdir / "configs"
        self.snapshot = workdir / "registry-snapshot"
        self.bench: LLMBench | None = None

    def setup(self, bench: LLMBench) -> None:
        """Production in the scratch registry, its answers recorded."""
        from ml_release.llm.candidate import store_config
        from ml_release.registry import Registry

        self.bench = bench
        self.responses.mkdir(parents=True)
        self.configs.mkdir(parents=True)
        self._write_answers(bench.config.version, bench.production)
        registry = Registry(registry_path(self.home))
        stored = store_config(bench.config, artifacts_dir(self.home), registry, self.spec.spec_hash)
        promote_baseline(registry, self.spec.model.name, stored.version)
        save_registry(self.home, self.snapshot)

    def run(self, mode: LLMFailureMode | None, strength: float | None = None) -> ModeRun:
        """One release run: the control (mode None) or the mode injected at `strength`."""
        from ml_release.llm.candidate import write_config

        bench = self.bench
        assert bench is not None, "call setup() first"
        name = mode.name if mode else CONTROL
        value = (mode.strength if strength is None else strength) if mode else None
        label = name + (f" at {value:g}" if mode else "")
        self.progress(f"{label}: LLM release graph on the injected answers")
        started = time.perf_counter()
        answers = mode.inject(bench, value) if mode else bench.control
        _check_answers(answers, name)
        suffix = "" if value is None else f"-{value:g}".replace(".", "p")
        version = f"{bench.config.version}-coverage-{name.replace('_', '-')}{suffix}"
        config = bench.config.model_copy(update={"version": version})
        folder = write_config(config, self.configs, self.spec.spec_hash)
        self._write_answers(version, answers)
        restore_registry(self.home, self.snapshot)
        outcome, _ = self.execute(self.spec, folder, responses=self.responses)
        run = ModeRun(
            name,
            mode.describe(value)
            if mode
            else f"control: production's prompt/config ({bench.config.version}) under a new "
            "version, its own answers",
            value,
            FAMILY,
            outcome.gates,
            outcome.failures,
            time.perf_counter() - started,
            outcome.exit_code,
            outcome.decision.get("decision") == "promoted",
        )
        self.progress(f"{label}: {'caught' if run.caught else 'not caught'} ({run.seconds:.1f} s)")
        return run

    def _write_answers(self, version: str, records: list[dict]) -> None:
        lines = [json.dumps(r, sort_keys=True) for r in records]
        (self.responses / f"{version}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")


def resolved_llm_spec(spec: ReleaseSpec) -> ReleaseSpec:
    """`spec` with absolute RAG-set, candidate and responses paths, without unreplayable gates.

    `${ML_RELEASE_HOME}` means the real home here, not the scratch one the runs use.
    """
    llm, base, home = spec.llm, spec.source.parent, release_home()
    update = {
        "dataset": str(llm.path(llm.dataset, base, home)),
        "candidate": str(llm.path(llm.candidate, base, home)),
    }
    if llm.responses:
        update["responses"] = str(llm.path(llm.responses, base, home))
    gates = [g for g in spec.gates if g.name not in NOT_REPLAYABLE]
    return spec.model_copy(update={"llm": llm.model_copy(update=update), "gates": gates})


def _required(spec: ReleaseSpec, chosen: list[LLMFailureMode]) -> list[str]:
    required = spec.coverage.required_modes([m.name for m in chosen])
    unknown = [m for m in required if m not in LLM_BY_NAME]
    if unknown:
        raise SpecError(
            f"{spec.source}: coverage.required names {', '.join(unknown)}, not failure modes of "
            f"an LLM application; use: {', '.join(LLM_BY_NAME)}"
        )
    return required


def run_llm_coverage(
    spec: ReleaseSpec,
    workdir: Path,
    execute: ReleaseExecutor,
    modes: list[str] | None = None,
    sweep: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> CoverageResult:
    """The control, then every applicable LLM mode (and its sweep); the scratch home is removed."""
    if spec.llm is None:
        raise SpecError(f"{spec.source}: an LLM coverage run needs the `llm` section")
    started = time.perf_counter()
    dropped = [g.name for g in spec.gates if g.name in NOT_REPLAYABLE]
    spec = resolved_llm_spec(spec)
    progress("reading the RAG set and production's answers")
    bench = prepare_llm(spec)
    chosen, skipped = applicable_llm(bench.rag, modes)
    required = _required(spec, chosen)
    if dropped:
        progress(f"not run (recorded answers cannot be judged): {', '.join(dropped)}")
    workdir.mkdir(parents=True, exist_ok=False)
    try:
        with scratch_environment(workdir / "home", spec):
            runner = LLMRunner(spec, workdir, execute, progress)
            runner.setup(bench)
            control, runs, sweeps = run_modes(runner, chosen, sweep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CoverageResult(
        str(spec.source),
        gate_columns(spec),
        control,
        runs,
        required,
        skipped,
        sweeps,
        time.perf_counter() - started,
    )
