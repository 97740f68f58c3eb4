"""`ml-release validate`, `run`, `canary`, `shadow` and `coverage`: gating a candidate."""

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.markup import escape

from ml_release import keys
from ml_release.cli.common import (
    console,
    home_line,
    instance,
    load,
    reader,
    store,
    sync_production_asset,
)
from ml_release.errors import EXIT_BLOCKED, EXIT_OK, NotFoundError, SpecError
from ml_release.spec import ReleaseSpec


def check_sources(spec: ReleaseSpec, read: bool = False) -> dict[str, int]:
    """Fail fast, before anything runs, when a source cannot be read.

    With `read`, each source is read far enough to prove it usable for this spec (columns,
    rows, labels, logged requests: `ml_release.source_probe`); returns its row count.
    """
    from ml_release.source_probe import probe_source
    from ml_release.sources import check_source

    if spec.llm is not None:  # an LLM release reads its RAG set, not the tabular sources
        from ml_release.home import release_home
        from ml_release.llm.dataset import load_rag_set

        rag = load_rag_set(spec.llm.path(spec.llm.dataset, spec.source.parent, release_home()))
        return {keys.RAG_QUESTIONS: len(rag.questions)}
    rows = {}
    for dataset in (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG):
        if read:
            rows[dataset] = probe_source(spec, dataset)
        else:
            check_source(spec.source_for(dataset), dataset, spec.model.task)
    return rows


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the spec, and read every source far enough to prove it usable by this spec.

    A folder of specs: every spec, or --model's.
    """
    from ml_release.cli.common import load_all

    for spec in load_all(args):
        for dataset, rows in check_sources(spec, read=True).items():
            console.print(f"{dataset}: {rows:,} rows", highlight=False)
        console.print(
            f"{spec.source}: valid ({len(spec.gates)} gates, spec hash {spec.spec_hash[:12]})"
        )
        if spec.allow_ungated:
            from ml_release.report import UNGATED

            console.print(f"[bold yellow]{UNGATED}[/]")
    return EXIT_OK


@contextmanager
def watching(title: str) -> Iterator[dict[str, Callable[[str], None]]]:
    """A status line for a run in this process: `title`, then what the run is doing.

    Yields the run's `progress` (lines to print: pool waits) and `activity` (the status
    line: the step running and its last log line, as `ml_release.run_watch` reads them).
    """
    with console.status(title) as status:
        yield {
            "progress": console.print,
            "activity": lambda line: status.update(f"{title} {escape(line[:100])}"),
        }


def run_release(
    spec: ReleaseSpec,
    title: str,
    candidate: Path | None = None,
    defs=None,
    max_wait: float | None = None,
):
    """Prepare the candidate, gate it in one run of its own, print the verdict table."""
    from ml_release.jobs import DEFAULT_MAX_WAIT, release_in_process
    from ml_release.report import print_outcome

    check_sources(spec, read=True)  # what `validate` checks, before anything is registered
    with watching(f"gating a candidate of {spec.model.name}…") as watch:
        watch["activity"]("preparing the candidate")  # trained, or admitted, before the run
        outcome = release_in_process(
            spec,
            candidate,
            defs,
            instance(),
            max_wait=DEFAULT_MAX_WAIT if max_wait is None else max_wait,
            **watch,
        )
    print_outcome(console, title, outcome, home_line(), spec.allow_ungated)
    return outcome


def cmd_run(args: argparse.Namespace) -> int:
    """Gate a candidate (trained, or --candidate PATH) and promote it if every gate passes."""
    spec = load(args)
    if spec.model.task == "ranking":
        from ml_release.demo.ranking.generate import ensure_demo_data

        if (written := ensure_demo_data(spec)) is not None:
            console.print(f"the ranking demo data was not there yet: generated it in {written}")
    candidate = Path(args.candidate).resolve() if args.candidate else None
    title = f"release of {spec.model.name} ({spec.source.name})"
    return run_release(spec, title, candidate, max_wait=args.max_wait).exit_code


def gated_candidate(model: str, version: str | None) -> tuple[str, str]:
    """(version, digest) to canary: `version`, else the latest one still awaiting its canary.

    That is the latest version the ledger records `gated` that no canary or override has
    concluded since (promoted, overridden or aborted).
    """
    ledger = reader()
    if version:
        registered = ledger.version(model, version)
        return registered.version, registered.digest
    last: dict[str, object] = {}
    for event in ledger.events(model, ("gated", "promoted", "overridden", "canary_aborted")):
        last[str(event.version)] = event
    waiting = sorted((e for e in last.values() if e.event == "gated"), key=lambda e: e.seq)
    if not waiting:
        raise NotFoundError(
            f"{model} has no candidate awaiting a canary: run `ml-release run` with "
            "canary.enabled first (its verdict table says GATED)"
        )
    return str(waiting[-1].version), str(waiting[-1].digest)


def cmd_canary(args: argparse.Namespace) -> int:
    """Roll a gated candidate out in traffic steps (canary.steps); promote it or abort."""
    spec = load(args)  # first: it puts the project's assets/checks/resources on the path
    if not spec.canary.enabled:
        raise SpecError(f"{spec.source}: canary.enabled is false; set it to use canaries")
    return run_canary(spec, args.candidate, max_wait=args.max_wait)


def run_canary(
    spec: ReleaseSpec, version: str | None = None, defs=None, max_wait: float | None = None
) -> int:
    """Run the `canary` job for the gated candidate; print its outcome; 1 when it aborted."""
    from ml_release.definitions import build_definitions
    from ml_release.jobs import DEFAULT_MAX_WAIT, execute_release
    from ml_release.report import print_outcome

    label, digest = gated_candidate(spec.model.name, version)
    steps = " -> ".join(f"{s:g} %" for s in spec.canary.steps)
    with watching(f"canary of {spec.model.name} {label}: {steps}…") as watch:
        outcome = execute_release(
            defs or build_definitions(spec),
            instance(),
            spec,
            digest,
            job=keys.CANARY_JOB,
            max_wait=DEFAULT_MAX_WAIT if max_wait is None else max_wait,
            **watch,
        )
    sync_production_asset(spec.model.name)
    print_outcome(
        console, f"canary of {spec.model.name} {label}", outcome, home_line(), spec.allow_ungated
    )
    return (
        EXIT_BLOCKED if outcome.decision.get("decision") == "canary aborted" else outcome.exit_code
    )


def cmd_shadow(args: argparse.Namespace) -> int:
    """Replay the latest logged requests to a candidate and to production; print the gates."""
    from rich.progress import Progress

    from ml_release.feature_code import load_feature_code
    from ml_release.home import temp_dir, warehouse_path
    from ml_release.report import verdict_table
    from ml_release.serving.environment import feature_code_paths, runtime_python
    from ml_release.serving.server import ServerOptions
    from ml_release.shadow.gates import judge, shadow_gates
    from ml_release.shadow.replay import load_window
    from ml_release.shadow.run import run_shadow
    from ml_release.subjects import model_ref, production_ref
    from ml_release.warehouse import Warehouse

    spec = load(args)
    gates = shadow_gates(spec)
    if not gates:
        raise SpecError(f"{spec.source}: no shadow gate in `gates` (see docs/gates.md)")
    ledger, name = reader(), spec.model.name
    live = production_ref(ledger, store(), name)
    versions = [v.version for v in ledger.versions(name)]
    version = args.candidate or next(
        (v for v in reversed(versions) if not live or v != live.version), None
    )
    if version is None:
        raise SpecError(f"{name} has no registered candidate: give --candidate VERSION")
    warehouse = Warehouse(warehouse_path(model=spec.scope))
    if not warehouse.exists(keys.SERVING_LOG):
        raise SpecError("the warehouse has no serving_log yet: run `ml-release run` once first")
    contract = load_feature_code(spec.features.code).required_columns
    requests = load_window(warehouse, spec, contract)
    folder = temp_dir() / f"shadow-cli-{os.getpid()}"
    options = ServerOptions(
        python=runtime_python(progress=console.print),
        ready_timeout=spec.serving.ready_timeout,
        extra_paths=feature_code_paths(spec.features.code, folder / "app"),
        trusted_types=tuple(spec.trusted_types),
    )
    with Progress(console=console) as progress:
        task = progress.add_task(f"replaying {len(requests):,} requests", total=len(requests))
        report = run_shadow(
            model_ref(ledger, store(), name, version),
            live,
            store(),
            requests,
            contract,
            spec,
            options,
            folder,
            progress=lambda line: progress.console.print(line, markup=False, highlight=False),
            replay_progress=lambda done, total: progress.update(task, completed=done),
        )
    results = [(gate, judge(gate, report, spec)) for gate in gates]
    inconclusive_blocks = spec.inconclusive == "block"
    rows = [
        {
            "gate": gate.id,
            "dataset": r.target,
            "verdict": r.verdict.value,
            "passed": r.passed(inconclusive_blocks),
            "blocking": gate.must_pass,
            "summary": r.summary,
        }
        for gate, r in results
    ]
    baseline = live.version if live else "none"
    title = f"shadow replay of {name} {version} vs {baseline}"
    console.print(verdict_table(title, rows, spec.allow_ungated))
    blocked = [row["gate"] for row in rows if row["blocking"] and not row["passed"]]
    console.print(f"blocked by {', '.join(blocked)}" if blocked else "every must_pass gate passed")
    return EXIT_BLOCKED if blocked else EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    """Inject each failure mode into a scratch copy and print which gates block it."""
    from datetime import UTC, datetime

    from ml_release.coverage.report import terminal_table, write_reports
    from ml_release.coverage.run import run_coverage
    from ml_release.home import release_home
    from ml_release.jobs import execute_for_coverage

    spec = load(args)
    check_sources(spec)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else None
    workdir = release_home() / "coverage" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    result = run_coverage(
        spec,
        workdir,
        execute_for_coverage,
        modes=modes,
        sweep=args.sweep,
        all_gates=args.all_gates,
        progress=lambda message: console.print(f"[dim]{message}[/]"),
    )
    console.print(terminal_table(result))
    if result.sweeps:
        from rich.markdown import Markdown

        from ml_release.coverage.report import sweep_lines

        console.print(Markdown("\n".join(sweep_lines(result))))
    for kind, path in write_reports(result, Path(args.out)).items():
        console.print(f"{kind}: {path}")
    if not result.control_passed:
        console.print("[red]the control (a healthy candidate) did not pass: see its row[/]")
    if result.errored:
        console.print(f"[red]errored, not counted as caught: {', '.join(result.errored)}[/]")
    if result.uncovered:
        console.print(f"[red]required but not blocked: {', '.join(result.uncovered)}[/]")
    return result.exit_code


def cmd_recover(args: argparse.Namespace) -> int:
    """Free the warehouse pool from runs that cannot release it (finished, or process gone)."""
    from ml_release.jobs import free_abandoned, pool_states

    home = instance()
    done = free_abandoned(home, force=set(args.run or []))
    for line in done:
        console.print(line)
    for state in pool_states(home):
        holders = ", ".join(state.holders) or "nobody"
        console.print(f"pool '{state.pool}': held by {holders}; {len(state.waiting)} run(s) wait")
    if not done:
        console.print("nothing to recover: every slot is held by a run that is still alive")
    return EXIT_OK
