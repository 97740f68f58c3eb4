"""`ml-release demo-data`, `gates`, `runtime` and `serve`."""

import argparse
import os
from dataclasses import replace
from pathlib import Path

from ml_release.cli.common import console, load, registry, store
from ml_release.errors import EXIT_OK, SpecError
from ml_release.home import demo_data_dir

# Kept here so building the parser does not import pandas (rollback must start fast).
SCENARIO_NAMES = (
    "null_flood",
    "unseen_categories",
    "out_of_range",
    "distribution_shift",
    "renamed_column",
    "changed_dtype",
)


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


def cmd_gates(args: argparse.Namespace) -> int:
    """Print the gate reference as Markdown (docs/gates.md is this output)."""
    from ml_release.gates.catalog import catalog_markdown

    print(catalog_markdown())
    return EXIT_OK


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

    from ml_release.home import temp_dir
    from ml_release.serving.environment import feature_code_paths, runtime_python
    from ml_release.serving.serve import serve_production
    from ml_release.serving.server import ServerOptions

    spec = load(args)
    folder = temp_dir() / f"serve-{os.getpid()}"
    options = ServerOptions(
        python=runtime_python(progress=console.print),
        ready_timeout=spec.serving.ready_timeout,
        max_request_bytes=spec.serving.max_request_bytes,
        max_rows=spec.serving.max_rows,
        extra_paths=feature_code_paths(spec.features.code, folder / "app"),
        trusted_types=tuple(spec.trusted_types),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve_production(
        registry(),
        store(),
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
