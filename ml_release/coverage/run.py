"""A coverage run: the real release graph, once per failure mode, in a scratch home.

Everything happens under a scratch `ML_RELEASE_HOME` (a new folder): its own registry with its
own production model (the spec's model trained on the training snapshot), its own warehouse,
artifacts and Dagster instance (ephemeral). The real registry and production alias are never
opened. Shared across modes: the data read once, the production model and the healthy control
candidate trained once, the scratch registry restored from one snapshot before each run, and
the model-server families (serving, shadow) run only for the modes that target them.
"""

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.coverage.bench import Bench
from ml_release.coverage.modes import (
    IN_PROCESS_FAMILIES,
    MODES,
    TABULAR_TASKS,
    FailureMode,
    Injection,
    applicable,
)
from ml_release.coverage.mutant import BASE_ENV, MUTATION_ENV
from ml_release.coverage.result import (
    CONTROL,
    CoverageResult,
    ModeRun,
    gate_columns,
)
from ml_release.errors import SpecError
from ml_release.feature_code import load_feature_code
from ml_release.gates.catalog import CATALOG
from ml_release.home import HOME_ENV, artifacts_dir, registry_path
from ml_release.identifiers import quote
from ml_release.registry.location import REGISTRY_URL_ENV
from ml_release.serving.environment import RUNTIME_DIR_ENV, runtime_root
from ml_release.spec import ReleaseSpec, SourceSpec

MUTANT_CODE = "ml_release.coverage.mutant"


def prepare(spec: ReleaseSpec, seed: int = 11) -> Bench:
    """Read the spec's data once; train the healthy control.

    The control is the spec's model retrained on 90% of the training rows (drawn without
    replacement): a refreshed snapshot's retrain. A bootstrap (63% distinct rows) was too rough
    a retrain on small data: on 265 training rows its ridge regressor was rightly inconclusive
    against production, and a control a healthy release would not match tells nothing.
    """
    frames = {
        name: _read(spec.source_for(dataset))
        for name, dataset in (
            ("training", keys.TRAINING_SNAPSHOT),
            ("evaluation", keys.EVALUATION_HOLDOUT),
            ("serving_log", keys.SERVING_LOG),
        )
    }
    raw_columns = load_feature_code(spec.features.code).required_columns
    bench = Bench(spec=spec, raw_columns=raw_columns, control=None, **frames)
    size = len(bench.training)
    rows = np.sort(np.random.default_rng(seed).choice(size, int(size * 0.9), replace=False))
    bench.control = bench.fit(spec.model.estimator, dict(spec.model.params), rows=rows)
    return bench


def _read(source: SourceSpec) -> pd.DataFrame:
    if source.duckdb is not None:
        with duckdb.connect(source.duckdb, read_only=True) as connection:
            return connection.execute(f"SELECT * FROM {quote(source.table)}").df()
    if source.file_format == "csv":
        return pd.read_csv(source.path)
    return pd.read_parquet(source.path)


def with_resolved_sources(spec: ReleaseSpec) -> ReleaseSpec:
    """`spec` with absolute source paths: `${ML_RELEASE_HOME}` means the real home, not scratch."""
    log = spec.source_for(keys.SERVING_LOG)
    data = spec.data.model_copy(
        update={
            "training": spec.source_for(keys.TRAINING_SNAPSHOT),
            "evaluation": spec.source_for(keys.EVALUATION_HOLDOUT),
            "serving_log": log,
        }
    )
    return spec.model_copy(update={"data": data})


def promote_baseline(registry, model: str, version: str) -> None:
    """Make `version` production in the scratch registry: what every mode is compared with."""
    registry.move_production(
        model,
        version,
        expected=None,
        event="promoted",
        step="coverage",
        reason="coverage: the baseline every failure mode is compared with",
    )


def save_registry(home: Path, snapshot: Path) -> None:
    """Copy the scratch registry's files (the DuckDB file and its WAL) into `snapshot`."""
    snapshot.mkdir(parents=True, exist_ok=True)
    target = registry_path(home)
    for path in target.parent.glob(target.name + "*"):
        shutil.copy2(path, snapshot / path.name)


def restore_registry(home: Path, snapshot: Path) -> None:
    """Put the snapshot back: no run sees another run's promotion."""
    target = registry_path(home)
    for path in target.parent.glob(target.name + "*"):
        path.unlink()
    for path in snapshot.iterdir():
        shutil.copy2(path, target.parent / path.name)


def run_modes(runner, modes: list, sweep: bool) -> tuple[ModeRun, list[ModeRun], dict]:
    """The control, each mode, and with `sweep` each swept mode up to its first blocked strength.

    `runner.run(mode, strength)` is one release run (mode None: the control).
    """
    control = runner.run(None)
    runs = [runner.run(mode) for mode in modes]
    sweeps: dict[str, list[ModeRun]] = {}
    for mode in (m for m in modes if sweep and m.sweep):
        sweeps[mode.name] = []
        for strength in mode.sweep:
            sweeps[mode.name].append(runner.run(mode, strength))
            if sweeps[mode.name][-1].caught:
                break  # the smallest blocked strength is found
    return control, runs, sweeps


@contextmanager
def scratch_environment(home: Path, spec: ReleaseSpec) -> Iterator[None]:
    """ML_RELEASE_HOME pointed at the scratch home (the runtime stays shared), then restored.

    The scratch registry is the home's file even where a registry server is configured: a
    coverage run must never promote into the deployment's registry (its runs are in-process on
    an ephemeral instance, so a configured Celery broker does not apply either).
    """
    names = (HOME_ENV, RUNTIME_DIR_ENV, BASE_ENV, MUTATION_ENV, REGISTRY_URL_ENV)
    saved = {name: os.environ.get(name) for name in names}
    runtime = str(runtime_root())
    os.environ.update({HOME_ENV: str(home), RUNTIME_DIR_ENV: runtime})
    if spec.features is not None:  # an LLM spec has no feature module for the mutant to wrap
        os.environ[BASE_ENV] = spec.features.code
    os.environ.pop(MUTATION_ENV, None)
    os.environ.pop(REGISTRY_URL_ENV, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Runner:
    """Runs the release graph for the control and for each mode, sharing what it can."""

    def __init__(
        self,
        spec: ReleaseSpec,
        workdir: Path,
        all_gates: bool = False,
        progress: Callable[[str], None] = lambda message: None,
        execute: "ReleaseExecutor | None" = None,
    ):
        self.spec, self.workdir, self.all_gates, self.progress = spec, workdir, all_gates, progress
        assert execute is not None, "the coverage runner needs its release execution"
        self.execute = execute
        self.modes: list[FailureMode] = list(MODES)  # the modes of this run (the control's scope)
        self.home = workdir / "home"
        self.snapshot = workdir / "registry-snapshot"
        self.bench: Bench | None = None

    def setup(self) -> Bench:
        """Train production and the control; promote production in the scratch registry."""
        from ml_release.publish import publish_candidate
        from ml_release.registry import Registry
        from ml_release.store import import_artifact

        self.progress("reading the data and training production and the healthy control")
        self.bench = bench = prepare(self.spec)
        production = bench.fit(self.spec.model.estimator, dict(self.spec.model.params))
        folder = publish_candidate(
            production, self.spec, version="coverage-production", home=self.home
        )
        registry = Registry(registry_path(self.home))
        stored, _, _ = import_artifact(folder, artifacts_dir(self.home), registry, move=True)
        promote_baseline(registry, self.spec.model.name, stored.version)
        save_registry(self.home, self.snapshot)
        return bench

    def run(self, mode: FailureMode | None, strength: float | None = None) -> ModeRun:
        """One release run: the control (mode None) or the mode injected at `strength`."""
        bench = self.bench
        assert bench is not None, "call setup() first"
        name = mode.name if mode else CONTROL
        value = (mode.strength if strength is None else strength) if mode else None
        injection = mode.inject(bench, value) if mode else Injection()
        families = self._families(mode)
        label = f"{name}" + (f" at {value:g}" if mode and mode.unit else "")
        self.progress(f"{label}: release graph on the injected copy ({', '.join(families)})")
        started = time.perf_counter()
        spec = self._spec_for(name, injection, families)
        restore_registry(self.home, self.snapshot)
        folder = self._publish(name, value, injection)
        outcome = self._execute(spec, folder, injection, mode.phase if mode else "release")
        run = ModeRun(
            name,
            mode.describe(value) if mode else "control: a healthy retrain, nothing injected",
            value,
            families,
            outcome.gates,
            outcome.failures,
            time.perf_counter() - started,
            1 if outcome.decision.get("decision") == "canary aborted" else outcome.exit_code,
            outcome.decision.get("decision") in ("promoted", "canary passed"),
            mode.expects_error if mode else "",
        )
        verdict = run.outcome
        self.progress(f"{label}: {verdict} ({run.seconds:.1f} s)")
        return run

    def _families(self, mode: FailureMode | None) -> tuple[str, ...]:
        """The gate families a run judges: the in-process ones and those the mode targets.

        The control judges every family some chosen mode (or `--all-gates`) brings in: a gate
        no mode of this run exercises is not in the matrix, so the control need not pass it.
        """
        present = {CATALOG[g.name].family for g in self.spec.gates}
        if self.all_gates:
            wanted = present
        elif mode is None:
            targeted = {f for m in self.modes for f in m.families}
            wanted = (set(IN_PROCESS_FAMILIES) | targeted) & present
        else:
            wanted = (set(IN_PROCESS_FAMILIES) | set(mode.families)) & present
        return tuple(
            f for f in dict.fromkeys(CATALOG[g.name].family for g in self.spec.gates) if f in wanted
        )

    def _spec_for(self, name: str, injection: Injection, families: tuple[str, ...]) -> ReleaseSpec:
        spec = self.spec
        gates = [g for g in spec.gates if CATALOG[g.name].family in families]
        data = spec.data
        folder = self.workdir / "data" / name
        if injection.evaluation is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "evaluation.parquet"
            injection.evaluation.to_parquet(path, index=False)
            data = data.model_copy(update={"evaluation": SourceSpec(path=str(path))})
        if injection.serving_log is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "serving_log.parquet"
            injection.serving_log.to_parquet(path, index=False)
            log = data.serving_log.model_copy(
                update={"path": str(path), "duckdb": None, "table": None, "format": None}
            )
            data = data.model_copy(update={"serving_log": log})
        return spec.model_copy(update={"gates": gates, "data": data})

    def _publish(self, name: str, strength: float | None, injection: Injection) -> Path:
        from ml_release.publish import publish_candidate

        bench = self.bench
        model = injection.model if injection.model is not None else copy.deepcopy(bench.control)
        if injection.mutation is not None:
            model.steps[0][1].code = MUTANT_CODE
        suffix = "" if strength is None else f"-{strength:g}".replace(".", "p")
        folder = publish_candidate(
            model, self.spec, version=f"coverage-{name.replace('_', '-')}{suffix}", home=self.home
        )
        if injection.manifest:
            manifest_file = folder / "manifest.json"
            manifest = json.loads(manifest_file.read_text())
            for key, value in injection.manifest.items():
                manifest[key] = {**manifest.get(key, {}), **value}
            manifest_file.write_text(json.dumps(manifest, indent=2))
        return folder

    def _execute(self, spec: ReleaseSpec, folder: Path, injection: Injection, phase: str):
        """The release job, then (canaries on, candidate gated) the canary job, one instance.

        The fault is in the environment from the start, or, for a canary-phase mode, only
        once the canary job starts: offline the candidate is healthy.
        """
        from ml_release.coverage.modes import mutation_json

        fault = mutation_json(injection)
        os.environ[MUTATION_ENV] = fault if phase == "release" else "{}"

        def before_canary() -> None:
            os.environ[MUTATION_ENV] = fault

        try:
            release, canary = self.execute(
                spec, folder, canary=spec.canary.enabled, before_canary=before_canary
            )
        finally:
            os.environ.pop(MUTATION_ENV, None)
        if canary is not None:
            release.gates += canary.gates
            release.failures += canary.failures
            release.decision = canary.decision
        return release


class ReleaseExecutor(Protocol):
    """One release run on a throwaway Dagster instance, given by the Dagster glue.

    `ml_release.jobs.execute_for_coverage` is the implementation; the core never imports it.
    """

    def __call__(
        self,
        spec: ReleaseSpec,
        candidate_folder: Path,
        *,
        canary: bool = False,
        before_canary: Callable[[], None] = ...,
        responses: Path | None = None,
    ) -> tuple[Any, Any]:
        """(the release outcome, the canary outcome or None)."""


def run_coverage(
    spec: ReleaseSpec,
    workdir: Path,
    execute: ReleaseExecutor,
    modes: list[str] | None = None,
    sweep: bool = False,
    all_gates: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> CoverageResult:
    """The control, then every applicable mode (and its sweep); the scratch home is removed."""
    if spec.model.task == "llm":
        from ml_release.coverage.llm import run_llm_coverage

        return run_llm_coverage(spec, workdir, execute, modes=modes, sweep=sweep, progress=progress)
    if spec.model.task not in TABULAR_TASKS:
        raise SpecError(
            f"{spec.source}: coverage supports model.task {', '.join(TABULAR_TASKS)} and llm, "
            f"not {spec.model.task}"
        )
    chosen, skipped = applicable(spec, modes)
    started = time.perf_counter()
    spec = with_resolved_sources(spec)
    workdir.mkdir(parents=True, exist_ok=False)
    try:
        with scratch_environment(workdir / "home", spec):
            runner = Runner(spec, workdir, all_gates, progress, execute)
            runner.modes = chosen
            runner.setup()
            control, runs, sweeps = run_modes(runner, chosen, sweep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    required = spec.coverage.required_modes([m.name for m in chosen])
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
