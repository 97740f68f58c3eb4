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
from ml_release.errors import EXIT_OK, ReleaseError
from ml_release.home import dagster_home, demo_data_dir, spec_path
from ml_release.spec import ReleaseSpec, load_spec

# Wide enough for the verdict table when output goes to a file or a CI log.
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

    for dataset in (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG):
        check_source(spec.source_for(dataset), dataset)


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Write the demo datasets (optionally one broken by a scenario)."""
    from ml_release.demo.generate import generate, write_demo_data
    from ml_release.demo.scenarios import SCENARIOS

    data = generate(seed=args.seed)
    if args.scenario:
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


def run_release(spec: ReleaseSpec, title: str):
    """Run the release graph for `spec` in this process and print the verdict table."""
    from ml_release.definitions import build_definitions
    from ml_release.jobs import ensure_instance, execute_release
    from ml_release.report import print_outcome

    _check_sources(spec)
    instance = ensure_instance(dagster_home())
    with console.status(f"running the release graph for {spec.model.name}…"):
        outcome = execute_release(build_definitions(spec), instance)
    print_outcome(console, title, outcome)
    return outcome


def cmd_run(args: argparse.Namespace) -> int:
    """Run every gate of the spec; exit 0 passed, 1 blocked, 2 bad input."""
    spec = _load(args)
    return run_release(spec, f"release of {spec.model.name} ({spec.source.name})").exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the demo data, run a clean release, then a broken one that must be blocked."""
    from ml_release.demo.generate import generate, write_demo_data
    from ml_release.demo.scenarios import null_flood, training_serving_skew
    from ml_release.spec import SourceSpec

    spec = _load(args)
    data = generate(seed=args.seed)
    write_demo_data(demo_data_dir(), data)
    console.rule("1. a healthy release")
    clean = run_release(spec, "healthy data")
    console.rule("2. a broken release: null flood in the holdout, serving-path skew")
    broken_dir = demo_data_dir() / "broken"
    broken_data = replace(
        data,
        evaluation=null_flood(data.evaluation, "annual_income", rate=0.3),
        serving_log=training_serving_skew(data.serving_log, "debt_to_income"),
    )
    paths = write_demo_data(broken_dir, broken_data)
    broken_spec = spec.model_copy(
        update={
            "data": spec.data.model_copy(
                update={
                    "evaluation": SourceSpec(path=str(paths["evaluation"])),
                    "serving_log": spec.data.serving_log.model_copy(
                        update={"path": str(paths["serving_log"])}
                    ),
                }
            )
        }
    )
    broken = run_release(broken_spec, "broken data")
    ok = clean.exit_code == 0 and broken.exit_code == 1
    console.rule("demo " + ("[green]behaved as expected[/]" if ok else "[red]did NOT behave[/]"))
    console.print(
        "Open the UI with `make ui` (Dagster at http://127.0.0.1:3000) to read each gate's "
        "evidence."
    )
    return EXIT_OK if ok else 1


def cmd_gates(args: argparse.Namespace) -> int:
    """Print the gate catalog."""
    from ml_release.gates.catalog import catalog_markdown

    print(catalog_markdown())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ml-release`."""
    parser = argparse.ArgumentParser(prog="ml-release", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="release spec (default: $ML_RELEASE_SPEC or release.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo-data", help=cmd_demo_data.__doc__)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="folder (default: $ML_RELEASE_HOME/demo)")
    p.add_argument("--scenario", choices=sorted(_scenarios()), help="break the holdout")
    p.set_defaults(func=cmd_demo_data)
    sub.add_parser("validate", help=cmd_validate.__doc__).set_defaults(func=cmd_validate)
    sub.add_parser("run", help=cmd_run.__doc__).set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help=cmd_demo.__doc__)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)
    sub.add_parser("gates", help=cmd_gates.__doc__).set_defaults(func=cmd_gates)
    return parser


def _scenarios() -> list[str]:
    from ml_release.demo.scenarios import SCENARIOS

    return list(SCENARIOS)


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
