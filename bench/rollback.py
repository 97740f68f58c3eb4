"""Rollback benchmark: how long `ml-release rollback` takes, and how much of it is the alias move.

Measured in one run, against a temporary ML_RELEASE_HOME holding two registered versions of a
tiny model, v1 then v2 promoted:

- the whole command as its own process, `ml-release --spec release.yaml rollback --reason
  bench`; each call undoes the last promotion (v2 back to v1), and v2 is promoted again,
  untimed, before the next call;
- the floor: a process that only runs `import ml_release`;
- `ml_release.rollback.rollback` in this process (verify the target artifact, move the alias);
- `Registry.move_production` alone (the compare-and-set transaction plus its ledger event);
- the floor of any registry operation: opening and closing the DuckDB file.

Every measurement is the median of its runs; processes get one untimed warm-up run first.

Usage: `.venv/bin/python bench/rollback.py [--runs 10] [--calls 50]`
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ml_release.artifacts import writer
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.home import artifacts_dir, registry_path
from ml_release.model import build_pipeline
from ml_release.registry import PRODUCTION, Registry
from ml_release.rollback import rollback
from ml_release.store import register_stored, store_artifact

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"
MODEL = "credit_default"
COMMAND_TARGET_S, REGISTRY_TARGET_MS = 2.0, 50.0


def setup(home: Path) -> Registry:
    """Two registered versions with distinct digests; v1 promoted, then v2."""
    writer.current_code_version = lambda: None  # the setup must not shell out to git
    data = generate(seed=5, n_training=1500, n_evaluation=10, n_serving=10)
    registry = Registry(registry_path(home))
    for version, c in (("v1", 1.0), ("v2", 0.1)):  # another C: other bytes, another digest
        params = {"C": c}
        pipeline = build_pipeline(
            "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", params
        )
        model = pipeline.fit(data.training[list(REQUIRED_COLUMNS)], data.training["defaulted"])
        written = writer.write_artifact(
            model, home / "staging", name=MODEL, version=version, features=REQUIRED_COLUMNS
        )
        manifest, folder = store_artifact(written, artifacts_dir(home), move=True)
        register_stored(registry, manifest, folder, artifacts_dir(home))
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    registry.move_production(MODEL, "v2", expected="v1", event="promoted", step="promote")
    return registry


def detached_syncs_done(timeout: float = 120) -> None:
    """Wait for the detached processes that report a rollback to the Dagster instance.

    `ml-release rollback` returns once the ledger has the move and leaves a process that
    tells the instance (it imports Dagster: seconds of CPU). A user runs one rollback; ten in a
    row would measure ten of those processes competing with the next command, so each run
    waits for them, untimed.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "sync_production" in " ".join(p.info["cmdline"] or [])
        ]
        if not running:
            return
        time.sleep(0.2)
    raise SystemExit("the detached production sync did not finish in time")


def median_process(argv: list[str], env: dict, runs: int, after: Callable = lambda: None):
    """Median wall seconds of `argv` as a child process; `after` checks each run's effect."""
    subprocess.run(argv, env=env, check=True, capture_output=True)  # warm-up, untimed
    after()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        after()
    return statistics.median(times), times


def median_call(call: Callable, calls: int, after: Callable = lambda: None):
    """Median wall seconds of `call()` in this process; `after` (untimed) follows each."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        after()
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="process runs per measurement")
    parser.add_argument("--calls", type=int, default=50, help="in-process calls per measurement")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    try:
        home = tmp / "home"
        registry = setup(home)
        env = {**os.environ, "ML_RELEASE_HOME": str(home), "DAGSTER_HOME": str(tmp / "dagster")}
        store = artifacts_dir(home)

        def moved() -> None:
            detached_syncs_done()  # untimed: the UI catch-up a rollback leaves running
            now = registry.alias(MODEL, PRODUCTION)
            if now != "v1":
                raise SystemExit(f"a rollback did not move production to v1 (it is {now})")
            registry.move_production(MODEL, "v2", expected="v1", event="promoted", step="bench")

        command = [str(BIN / "ml-release"), "--spec", str(PROJECT / "release.yaml")]
        command += ["rollback", "--reason", "bench"]
        floor, floor_runs = median_process(
            [str(BIN / "python"), "-c", "import ml_release"], env, args.runs
        )
        whole, whole_runs = median_process(command, env, args.runs, moved)

        def roll() -> None:
            if rollback(registry, store, MODEL, reason="bench").already_done:
                raise SystemExit("an in-process rollback did not move production")

        inproc, inproc_runs = median_call(roll, args.calls, moved)

        live = [registry.alias(MODEL, PRODUCTION)]  # tracked here: the timed call is the move

        def move() -> None:
            target = "v1" if live[0] == "v2" else "v2"
            registry.move_production(
                MODEL, target, expected=live[0], event="promoted", step="promote"
            )
            live[0] = target

        alias, alias_runs = median_call(move, args.calls)

        def open_close() -> None:  # the floor of any registry operation on this disk
            registry.backend.file.connect().__enter__().close()

        file_floor, file_runs = median_call(open_close, args.calls)
        problems = registry.problems(MODEL)
        if problems:
            raise SystemExit(f"registry inconsistent after the benchmark: {problems}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        ("floor: python -c 'import ml_release' (process)", floor, floor_runs, ""),
        ("ml-release rollback, whole command (process)", whole, whole_runs, COMMAND_TARGET_S),
        ("rollback() in-process: verify + alias move", inproc, inproc_runs, ""),
        ("Registry.move_production alone", alias, alias_runs, REGISTRY_TARGET_MS / 1000),
        ("floor of a registry operation: open + close the DuckDB file", file_floor, file_runs, ""),
    ]
    print(f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("| measurement | runs | median ms | min-max ms | / floor | target | met |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name, median, runs, target in rows:
        spread = f"{min(runs) * 1000:.1f}-{max(runs) * 1000:.1f}"
        goal = f"< {target * 1000:.0f} ms" if target else ""
        met = ("yes" if median < target else "NO") if target else ""
        print(
            f"| {name} | {len(runs)} | {median * 1000:.1f} | {spread} | "
            f"{median / floor:.2f}x | {goal} | {met} |"
        )


if __name__ == "__main__":
    main()
