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
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ml_release.coverage.llm_modes import (
    FAMILY,
    JITTER,
    LLM_BY_NAME,
    NOT_REPLAYABLE,
    LLMBench,
    LLMFailureMode,
    applicable_llm,
)
from ml_release.coverage.result import CONTROL, CoverageResult, ModeRun, gate_columns
from ml_release.coverage.run import (
    ReleaseExecutor,
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
from ml_release.spec import ReleaseSpec


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
