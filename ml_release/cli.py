"""The `ml-release` command line. Exit codes are documented in docs/cli.md.

Commands: `demo-data` (write the demo datasets), `validate` (spec and sources), `run` (the
release job in-process, with a verdict table), `demo` (a clean and a broken release), `gates`
(the gate catalog).
"""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from ml_release import keys
from ml_release.errors import EXIT_OK, ReleaseError, SpecError
from ml_release.faults import KILL_CANDIDATE_ENV
from ml_release.home import dagster_home, demo_data_dir, spec_path
from ml_release.spec import CanarySpec, ReleaseSpec, load_spec

# Wide enough for the verdict table when output goes to a file or a CI log.
# Kept here so building the parser does not import pandas (rollback must start fast).
SCENARIO_NAMES = (
    "null_flood",
    "unseen_categories",
    "out_of_range",
    "distribution_shift",
    "renamed_column",
    "changed_dtype",
)

console = Console(width=None if sys.stdout.isatty() else 140)


def _project_root(spec_folder: Path) -> Path:
    # The checkout holding the spec, else the one we run in, else the current directory.
    for start in (spec_folder, Path.cwd()):
        for folder in (start, *start.parents):
            if (folder / "workspace.yaml").exists():
                return folder
    return Path.cwd()


def _use_project(spec_file: Path) -> None:
    # The checkout's assets/checks/resources (and user feature code) import from the project
    # root, as Dagster's workspace.yaml `working_directory` does.
    root = str(_project_root(spec_file.parent))
    if root not in sys.path:
        sys.path.insert(0, root)


def _load(args: argparse.Namespace) -> ReleaseSpec:
    path = Path(args.spec).resolve() if args.spec else spec_path()
    _use_project(path)
    return load_spec(path)


def _check_sources(spec: ReleaseSpec) -> None:
    from ml_release.sources import check_source

    if spec.llm is not None:  # an LLM release reads its RAG set, not the tabular sources
        from ml_release.home import release_home
        from ml_release.llm.dataset import load_rag_set

        load_rag_set(spec.llm.path(spec.llm.dataset, spec.source.parent, release_home()))
        return
    for dataset in (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG):
        check_source(spec.source_for(dataset), dataset, spec.model.task)


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Write the demo datasets (optionally one broken by a scenario)."""
    from ml_release.demo.generate import generate, write_demo_data
    from ml_release.demo.scenarios import SCENARIOS

    if args.task == "ranking":
        from ml_release.demo.ranking import generate as ranking

        if args.scenario:
            raise SpecError("--scenario breaks the classification demo data; drop it")
        folder = Path(args.out) if args.out else demo_data_dir() / ranking.FOLDER
        written = ranking.write_ranking_data(folder, ranking.generate(seed=args.seed))
        for name, path in written.items():
            console.print(f"{name:12s} {path}")
        return EXIT_OK
    data = generate(seed=args.seed)
    if args.scenario:
        if args.scenario not in SCENARIOS:
            raise SpecError(f"unknown scenario {args.scenario!r}: use one of {SCENARIO_NAMES}")
        data = replace(data, evaluation=SCENARIOS[args.scenario](data.evaluation))
    folder = Path(args.out) if args.out else demo_data_dir()
    for name, path in write_demo_data(folder, data).items():
        console.print(f"{name:12s} {path}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the spec and that every source can be read."""
    spec = _load(args)
    _check_sources(spec)
    console.print(
        f"{spec.source}: valid ({len(spec.gates)} gates, spec hash {spec.spec_hash[:12]})"
    )
    return EXIT_OK


def _registry():
    from ml_release.home import registry_path
    from ml_release.registry import Registry

    return Registry(registry_path())


def run_release(spec: ReleaseSpec, title: str, candidate: str = ""):
    """Run the release graph for `spec` in this process and print the verdict table."""
    from ml_release.definitions import build_definitions
    from ml_release.jobs import ensure_instance, execute_release
    from ml_release.promotion import record_blocked
    from ml_release.report import print_outcome

    _check_sources(spec)
    instance = ensure_instance(dagster_home())
    with console.status(f"running the release graph for {spec.model.name}…"):
        outcome = execute_release(build_definitions(spec), instance, candidate)
    # release_decision never ran on a block: the ledger still records why the candidate stopped
    record_blocked(_registry(), spec.model.name, spec.spec_hash, outcome)
    print_outcome(console, title, outcome)
    return outcome


def cmd_run(args: argparse.Namespace) -> int:
    """Gate a candidate (trained, or --candidate PATH) and promote it if every gate passes."""
    spec = _load(args)
    if spec.model.task == "ranking":
        from ml_release.demo.ranking.generate import ensure_demo_data

        if (written := ensure_demo_data(spec)) is not None:
            console.print(f"the ranking demo data was not there yet: generated it in {written}")
    candidate = str(Path(args.candidate).resolve()) if args.candidate else ""
    title = f"release of {spec.model.name} ({spec.source.name})"
    return run_release(spec, title, candidate).exit_code


def cmd_register(args: argparse.Namespace) -> int:
    """Publish an artifact folder or a .skops model file into incoming/ for the sensor."""
    from ml_release.publish import publish_path

    spec = _load(args)
    folder = publish_path(Path(args.path), spec, version=args.version)
    console.print(f"published {folder.name} into {folder.parent}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move production back to the previous (or --to) version after verifying it."""
    from ml_release.rollback import rollback

    model = args.model or _load(args).model.name
    outcome = rollback(_registry(), model, to=args.to, reason=args.reason)
    if outcome.already_done:
        console.print(f"{model} {outcome.target} is already in production: nothing to do")
    else:
        event = outcome.event
        console.print(
            f"rolled back {model}: production {event.from_version} -> {event.version} "
            f"(ledger #{event.seq})"
        )
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Print the production timeline: what was in production when, and why it changed."""
    from ml_release.report import history_table

    model = args.model or _load(args).model.name
    console.print(history_table(model, _registry()))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print production, previous, and the latest candidates with their verdicts."""
    from ml_release.report import status_table

    model = args.model or _load(args).model.name
    console.print(status_table(model, _registry()))
    return EXIT_OK


def _with_model(spec: ReleaseSpec, estimator: str, params: dict) -> ReleaseSpec:
    return spec.model_copy(
        update={"model": spec.model.model_copy(update={"estimator": estimator, "params": params})}
    )


def _with_broken_data(spec: ReleaseSpec, data) -> ReleaseSpec:
    from ml_release.demo.generate import write_demo_data
    from ml_release.demo.scenarios import null_flood, training_serving_skew
    from ml_release.spec import SourceSpec

    broken = replace(
        data,
        evaluation=null_flood(data.evaluation, "annual_income", rate=0.3),
        serving_log=training_serving_skew(data.serving_log, "debt_to_income"),
    )
    paths = write_demo_data(demo_data_dir() / "broken", broken)
    log = spec.data.serving_log.model_copy(update={"path": str(paths["serving_log"])})
    data_spec = spec.data.model_copy(
        update={"evaluation": SourceSpec(path=str(paths["evaluation"])), "serving_log": log}
    )
    return spec.model_copy(update={"data": data_spec})


def _segment_regression_candidate(spec: ReleaseSpec, data) -> Path:
    from ml_release.demo.features import REQUIRED_COLUMNS
    from ml_release.demo.model_scenarios import segment_regression
    from ml_release.publish import publish_candidate

    model = segment_regression(spec, data.training, list(REQUIRED_COLUMNS), "region", "coastal")
    return publish_candidate(
        model, spec, version="demo-segment-regression", home=demo_data_dir() / "published"
    )


# The demo's slow candidate: 2,000 small boosted trees. As accurate as the logistic regression
# (a hair better on the holdout), twice its single-row latency.
SLOW_ENSEMBLE = {
    "max_iter": 2000,
    "learning_rate": 0.01,
    "max_leaf_nodes": 7,
    "l2_regularization": 1.0,
    "early_stopping": False,
}


def _set_aside_previous_state() -> None:
    """Move an earlier registry and its artifacts aside: the demo's first release is a first."""
    from datetime import UTC, datetime

    from ml_release.home import artifacts_dir, incoming_dir, quarantine_dir, registry_path

    present = [
        p
        for p in (
            registry_path(),
            registry_path().with_name(registry_path().name + ".wal"),
            artifacts_dir(),
            incoming_dir(),
            quarantine_dir(),
        )
        if p.exists()
    ]
    if not present:
        return
    aside = registry_path().parent / f"before-demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    aside.mkdir(parents=True)
    for path in present:
        path.rename(aside / path.name)
    console.print(f"the demo starts from an empty registry: the previous one is in {aside}")


# The demo's canary: short steps so it takes about a minute, so wider margins than the
# defaults (a 2-point error rate, a 0.1 mean-score shift) to be judged on that little traffic.
# The arms are compared within each step (5/25/50 %: 240 candidate requests): margins a healthy
# retrain can meet there; the replayed window's labels have not arrived, so no quality test.
DEMO_CANARY = CanarySpec(
    enabled=True,
    requests_per_step=300,
    error_margin=0.05,
    score_shift_margin=0.1,
    quality_margin=None,
)


def cmd_demo(args: argparse.Namespace) -> int:
    """Seven releases, two canaries and a rollback on generated data, then the history."""
    from ml_release.demo.generate import generate, write_demo_data
    from ml_release.report import history_table

    spec = _load(args)
    _set_aside_previous_state()
    data = generate(seed=args.seed)
    write_demo_data(demo_data_dir(), data)
    console.rule("1. first release: a small gradient-boosting model, no baseline yet")
    weak = _with_model(spec, "hist_gradient_boosting", {"max_iter": 25, "max_depth": 2})
    first = run_release(weak, "first release")
    console.rule("2. better globally, worse for one region: a segment regression")
    regression = run_release(
        spec, "segment regression", str(_segment_regression_candidate(spec, data))
    )
    console.rule(f"3. the {spec.model.estimator} from release.yaml")
    second = run_release(spec, "second release")
    console.rule("4. as accurate, far slower: 2,000 boosted trees")
    slow_spec = _with_model(spec, "hist_gradient_boosting", SLOW_ENSEMBLE)
    slow = run_release(slow_spec, "slow release")
    canary_spec = spec.model_copy(update={"canary": DEMO_CANARY})
    console.rule("5. canary on: a retrained model passes the gates and a 5-100 % canary")
    retrain = _with_model(canary_spec, "logistic_regression", {"C": 0.5})
    retrained = run_release(retrain, "gated")
    canary = run_canary(retrain)  # the same spec: verdicts under another spec hash are stale
    console.rule("6. canary: another retrain whose server crashes at the 25 % step")
    crashing = _with_model(canary_spec, "logistic_regression", {"C": 0.25})
    crashed_gate = run_release(crashing, "gated")
    os.environ[KILL_CANDIDATE_ENV] = "25"
    try:
        crashed = run_canary(crashing)
    finally:
        del os.environ[KILL_CANDIDATE_ENV]
    console.rule("7. a new random forest on broken data: incomes missing, serving-path skew")
    broken_spec = _with_model(_with_broken_data(spec, data), "random_forest", {"n_estimators": 60})
    broken = run_release(broken_spec, "broken release")
    console.rule("8. production misbehaves: `ml-release rollback`")
    rolled = cmd_rollback(
        argparse.Namespace(model=spec.model.name, to=None, reason="demo: roll back", spec=None)
    )
    console.print(history_table(spec.model.name, _registry()))
    codes = (
        first.exit_code,
        regression.exit_code,
        second.exit_code,
        slow.exit_code,
        retrained.exit_code,
        canary,
        crashed_gate.exit_code,
        crashed,
        broken.exit_code,
        rolled,
    )
    ok = codes == (0, 1, 0, 1, 0, 0, 0, 1, 1, 0)
    console.rule("demo " + ("[green]behaved as expected[/]" if ok else "[red]did NOT behave[/]"))
    console.print(
        "Open the UI with `make ui` (Dagster at http://127.0.0.1:3000) to read each gate's "
        "evidence; `ml-release status` and `ml-release history` read the registry."
    )
    return EXIT_OK if ok else 1


def cmd_gates(args: argparse.Namespace) -> int:
    """Print the gate reference as Markdown (docs/gates.md is this output)."""
    from ml_release.gates.catalog import catalog_markdown

    print(catalog_markdown())
    return EXIT_OK


def cmd_canary(args: argparse.Namespace) -> int:
    """Roll the gated candidate out in traffic steps (canary.steps); promote it or abort."""
    spec = _load(args)  # first: it puts the project's assets/checks/resources on the path
    if not spec.canary.enabled:
        raise SpecError(f"{spec.source}: canary.enabled is false; set it to use canaries")
    return run_canary(spec)


def run_canary(spec: ReleaseSpec) -> int:
    """Run the `canary` job in this process and print its outcome; 1 when it aborted."""
    from ml_release.definitions import build_definitions
    from ml_release.jobs import ensure_instance, execute_release
    from ml_release.report import print_outcome

    instance = ensure_instance(dagster_home())
    steps = " -> ".join(f"{s:g} %" for s in spec.canary.steps)
    with console.status(f"canary of {spec.model.name}: {steps}…"):
        outcome = execute_release(build_definitions(spec), instance, job=keys.CANARY_JOB)
    print_outcome(console, f"canary of {spec.model.name}", outcome)
    return 1 if outcome.decision.get("decision") == "canary aborted" else outcome.exit_code


def cmd_runtime(args: argparse.Namespace) -> int:
    """Build (once) the serving runtime's virtualenv and print where it is."""
    import subprocess

    from ml_release.serving.environment import runtime_python

    python = runtime_python(progress=console.print)
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "from ml_release.serving.runtime import runtime_versions as v; print(v())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    console.print(f"serving runtime: {python}\n{versions}", markup=False, highlight=False)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the production model on 127.0.0.1, reloading when production moves."""
    import signal
    import threading

    from ml_release.home import artifacts_dir, temp_dir
    from ml_release.serving.environment import feature_code_paths, runtime_python
    from ml_release.serving.serve import serve_production
    from ml_release.serving.server import ServerOptions

    spec = _load(args)
    folder = temp_dir() / f"serve-{os.getpid()}"
    options = ServerOptions(
        python=runtime_python(progress=console.print),
        ready_timeout=spec.serving.ready_timeout,
        max_request_bytes=spec.serving.max_request_bytes,
        max_rows=spec.serving.max_rows,
        extra_paths=feature_code_paths(spec.features.code, folder / "app"),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve_production(
        _registry(),
        artifacts_dir(),
        spec.model.name,
        options,
        folder / "server",
        (args.port, args.metrics_port),
        stop,
        log=lambda line: console.print(line, markup=False, highlight=False),
        poll_seconds=args.poll,
    )
    console.print("stopped")
    return EXIT_OK


def cmd_shadow(args: argparse.Namespace) -> int:
    """Replay the latest logged requests to a candidate and to production; print the gates."""
    from rich.progress import Progress

    from ml_release.feature_code import load_feature_code
    from ml_release.home import artifacts_dir, temp_dir, warehouse_path
    from ml_release.registry import PRODUCTION
    from ml_release.report import verdict_table
    from ml_release.serving.environment import feature_code_paths, runtime_python
    from ml_release.serving.server import ServerOptions
    from ml_release.shadow.gates import judge, shadow_gates
    from ml_release.shadow.replay import load_window
    from ml_release.shadow.run import run_shadow
    from ml_release.warehouse import Warehouse

    spec = _load(args)
    gates = shadow_gates(spec)
    if not gates:
        raise SpecError(f"{spec.source}: no shadow gate in `gates` (see docs/gates.md)")
    registry, name = _registry(), spec.model.name
    versions = [v.version for v in registry.versions(name)]
    live = registry.alias(name, PRODUCTION)
    version = args.candidate or next((v for v in reversed(versions) if v != live), None)
    if version is None:
        raise SpecError(f"{name} has no registered candidate: give --candidate VERSION")
    warehouse = Warehouse(warehouse_path())
    if not warehouse.exists(keys.SERVING_LOG):
        raise SpecError("the warehouse has no serving_log yet: run `ml-release run` once first")
    contract = load_feature_code(spec.features.code).required_columns
    requests = load_window(warehouse, spec, contract)
    folder = temp_dir() / f"shadow-cli-{os.getpid()}"
    options = ServerOptions(
        python=runtime_python(progress=console.print),
        ready_timeout=spec.serving.ready_timeout,
        extra_paths=feature_code_paths(spec.features.code, folder / "app"),
    )
    with Progress(console=console) as progress:
        task = progress.add_task(f"replaying {len(requests):,} requests", total=len(requests))
        report = run_shadow(
            (version, Path(registry.version(name, version).path)),
            (live, Path(registry.version(name, live).path)) if live else None,
            artifacts_dir(),
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
            "gate": r.gate,
            "dataset": r.target,
            "verdict": r.verdict.value,
            "passed": r.passed(inconclusive_blocks),
            "blocking": gate.must_pass,
            "summary": r.summary,
        }
        for gate, r in results
    ]
    console.print(verdict_table(f"shadow replay of {name} {version} vs {live or 'none'}", rows))
    blocked = [row["gate"] for row in rows if row["blocking"] and not row["passed"]]
    console.print(f"blocked by {', '.join(blocked)}" if blocked else "every must_pass gate passed")
    return 1 if blocked else EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    """Inject each failure mode into a scratch copy and print which gates block it."""
    from datetime import UTC, datetime

    from ml_release.coverage.report import terminal_table, write_reports
    from ml_release.coverage.run import run_coverage
    from ml_release.home import release_home

    spec = _load(args)
    _check_sources(spec)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else None
    workdir = release_home() / "coverage" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    result = run_coverage(
        spec,
        workdir,
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


HELP_EPILOG = """\
exit codes: 0 promoted or done, 1 blocked by a gate, 2 bad input (spec, data, arguments),
            3 lock or conflict, 4 integrity (artifact digest, unsafe file), 5 environment

first steps:  ml-release validate && ml-release run
reference:    docs/cli.md (commands), docs/spec.md (release.yaml), docs/gates.md (gates)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ml-release`."""
    parser = argparse.ArgumentParser(
        prog="ml-release",
        description="Release gates for machine-learning models: validate a release spec, gate "
        "a candidate, promote or block it, roll back. Run from the project root.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--spec", help="release spec (default: $ML_RELEASE_SPEC or release.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo-data", help=cmd_demo_data.__doc__)
    p.add_argument("--seed", type=int, default=7, help="random seed of the data (default 7)")
    p.add_argument("--out", help="folder (default: $ML_RELEASE_HOME/demo)")
    p.add_argument("--scenario", help="break the holdout: " + ", ".join(SCENARIO_NAMES))
    p.add_argument(
        "--task",
        choices=["binary_classification", "ranking"],
        default="binary_classification",
        help="which demo: credit default (default) or search ranking ($ML_RELEASE_HOME/demo/"
        "ranking, read by examples/ranking/release.yaml)",
    )
    p.set_defaults(func=cmd_demo_data)
    sub.add_parser("validate", help=cmd_validate.__doc__).set_defaults(func=cmd_validate)
    p = sub.add_parser("run", help=cmd_run.__doc__)
    p.add_argument("--candidate", help="artifact folder to gate instead of training one")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("register", help=cmd_register.__doc__)
    p.add_argument("path", help="artifact folder (with manifest.json) or a .skops model file")
    p.add_argument("--version", help="version label (default: timestamp and digest)")
    p.set_defaults(func=cmd_register)
    p = sub.add_parser("rollback", help=cmd_rollback.__doc__)
    p.add_argument("--to", help="version to restore (default: the previous alias)")
    p.add_argument("--reason", default="manual rollback", help="recorded in the ledger")
    p.add_argument("--model", help="model name (default: from the spec)")
    p.set_defaults(func=cmd_rollback)
    for name, func in (("history", cmd_history), ("status", cmd_status)):
        p = sub.add_parser(name, help=func.__doc__)
        p.add_argument("--model", help="model name (default: from the spec)")
        p.set_defaults(func=func)
    p = sub.add_parser("demo", help=cmd_demo.__doc__)
    p.add_argument("--seed", type=int, default=7, help="random seed of the demo data (default 7)")
    p.set_defaults(func=cmd_demo)
    sub.add_parser("gates", help=cmd_gates.__doc__).set_defaults(func=cmd_gates)
    sub.add_parser("runtime", help=cmd_runtime.__doc__).set_defaults(func=cmd_runtime)
    sub.add_parser("canary", help=cmd_canary.__doc__).set_defaults(func=cmd_canary)
    p = sub.add_parser("shadow", help=cmd_shadow.__doc__)
    p.add_argument("--candidate", help="version to replay to (default: the latest registered)")
    p.set_defaults(func=cmd_shadow)
    p = sub.add_parser("coverage", help=cmd_coverage.__doc__)
    p.add_argument("--modes", help="comma-separated failure modes (default: all that apply)")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also find the weakest blocked strength of the quantitative modes",
    )
    p.add_argument(
        "--all-gates",
        action="store_true",
        help="run the serving and shadow gates for every mode, not only the modes they target",
    )
    p.add_argument("--out", default="reports", help="folder for coverage.md and coverage.html")
    p.set_defaults(func=cmd_coverage)
    p = sub.add_parser("serve", help=cmd_serve.__doc__)
    p.add_argument("--port", type=int, default=8080, help="V2 HTTP port (default 8080)")
    p.add_argument("--metrics-port", type=int, default=8082, help="Prometheus port (8082)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between registry looks")
    for choice in sub._choices_actions:  # `ml-release COMMAND --help` starts with its summary
        sub.choices[choice.dest].description = choice.help
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ml-release` script."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home()))
    try:
        return args.func(args)
    except ReleaseError as exc:
        console.print(f"[bold red]error[/] ({type(exc).__name__}):")
        console.print(str(exc), markup=False, highlight=False)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
