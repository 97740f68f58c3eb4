"""Concurrency benchmark: releases per minute with N = 1, 2, 4 releases at once.

Two set-ups, each measured in the same run against its own baseline, the same releases run one
after another:

- `embedded`: the defaults (a local Dagster instance under ML_RELEASE_HOME, the DuckDB registry
  file, steps in the `ml-release run` process);
- `postgres-celery`: the Dagster instance of docs/examples/dagster-postgres.yaml and the
  registry on one PostgreSQL server, a Redis broker and 2 Celery worker processes running the
  steps (servers started on 127.0.0.1 as the tests start them, tests/servers.py).

The location gates four models (a folder of four specs, docs/deployment.md "Many models"):
N concurrent releases are of N different models, each `ml-release --spec SPECS --model M run
--candidate FOLDER` as its own process with a candidate of its own (another `C` of the demo's
logistic regression: distinct digests). Each model has its own warehouse file and pool, so
they share only the instance, the registry and the machine. Sequential time for N is the same
N models' releases run one after another; each set-up first runs one untimed release per
model (production, warehouses and workers warm). The specs are release.yaml without the
serving gates, as in the tests; data are the tests' small demo sizes.

Where time goes, per release, from the instance's event log: `steps` (STEP_START to its end:
compute, including waits for the DuckDB files inside a step), `pool` (a step blocked by the
`warehouse` pool until it could start or be submitted), `queue` (Celery: submitted to picked
up by a worker), and `other` (the rest of the process: start, imports, admitting the
candidate, orchestration, recording the outcome).

Usage: `.venv/bin/python bench/concurrency.py [--modes embedded,postgres-celery] [--counts 1,2,4]`
"""

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import dagster as dg  # noqa: E402

from ml_release import keys  # noqa: E402
from ml_release.artifacts import read_manifest  # noqa: E402
from ml_release.artifacts.writer import write_artifact  # noqa: E402
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS  # noqa: E402
from ml_release.demo.generate import generate, write_demo_data  # noqa: E402
from ml_release.gates.serving import serving_gates  # noqa: E402
from ml_release.gates.shadow import shadow_gates  # noqa: E402
from ml_release.model import build_pipeline  # noqa: E402
from tests.servers import CeleryWorkers, postgres_server, redis_server  # noqa: E402

ML_RELEASE = Path(sys.executable).parent / "ml-release"
SPAN_ORDER = ("steps", "queue", "pool", "orchestration")
RUN_BOUNDS = (
    dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
)
SIZES = {"n_training": 6000, "n_evaluation": 3000, "n_serving": 2000}
SERVING = {g.name for g in [*serving_gates(), *shadow_gates()]}  # model servers: left out
RUNTIME_DIR = os.environ.get("ML_RELEASE_RUNTIME_DIR") or str(PROJECT / ".ml_release" / "runtime")


MODELS = ("model_a", "model_b", "model_c", "model_d")


class Candidates:
    """Distinct artifacts of the demo model, trained on demand."""

    def __init__(self, root: Path, data) -> None:
        self.root, self.data, self.count = root, data, 0

    def next(self, model: str) -> tuple[str, Path]:
        """(model, a new artifact of it)."""
        self.count += 1
        pipeline = build_pipeline(
            "ml_release.demo.features",
            NUMERIC,
            CATEGORICAL,
            "logistic_regression",
            {"C": 0.2 + 0.1 * self.count},
        )
        fitted = pipeline.fit(
            self.data.training[list(REQUIRED_COLUMNS)], self.data.training["defaulted"]
        )
        return model, write_artifact(
            fitted,
            self.root,
            name=model,
            version=f"c{self.count}",
            features=REQUIRED_COLUMNS,
        )


def write_spec(root: Path) -> Path:
    """A folder of one spec per model of MODELS; its path."""
    folder = root / "specs"
    folder.mkdir()
    for name in MODELS:
        data = yaml.safe_load((PROJECT / "release.yaml").read_text())
        data["model"]["name"] = name
        data["gates"] = [g for g in data["gates"] if g["name"] not in SERVING]
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def releases(spec: Path, env: dict, items: list[tuple[str, Path]]) -> tuple[float, list[tuple]]:
    """Run one release per (model, folder) at once; (wall s, [(folder, exit code, seconds)])."""
    start = time.perf_counter()
    running = [
        (folder, time.perf_counter(), subprocess.Popen(
            [str(ML_RELEASE), "--spec", str(spec), "--model", model, "run", "--candidate",
             str(folder)],
            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
        for model, folder in items
    ]  # fmt: skip
    done = []
    for folder, began, process in running:
        output, _ = process.communicate(timeout=1800)
        if process.returncode not in (0, 1, 3):
            raise RuntimeError(f"release of {folder.name} failed ({process.returncode}):\n{output}")
        done.append((folder, process.returncode, time.perf_counter() - began))
    return time.perf_counter() - start, done


def split_time(spans: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Seconds of a run's wall time by what it was doing, each moment counted once.

    `spans` maps a kind to intervals; where kinds overlap, the first in SPAN_ORDER wins (a run
    with one step computing and another blocked is computing).
    """
    edges = sorted({t for intervals in spans.values() for a, b in intervals for t in (a, b)})
    found = dict.fromkeys(SPAN_ORDER, 0.0)
    for a, b in itertools.pairwise(edges):
        middle = (a + b) / 2
        for kind in SPAN_ORDER:
            if any(lo <= middle < hi for lo, hi in spans.get(kind, [])):
                found[kind] += b - a
                break
    return found


def where_time_goes(instance: dg.DagsterInstance, digest: str) -> dict[str, float]:
    """The run gating `digest`: seconds in steps, pool waits, the Celery queue, and the rest."""
    [run] = instance.get_runs(dg.RunsFilter(tags={keys.PARTITION_TAG: digest}), limit=1)
    marks: dict[str, dict[str, float]] = {}
    bounds = []
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind, at, message = event.event_type, entry.timestamp, event.message or ""
        step = marks.setdefault(event.step_key or "", {})
        if kind in RUN_BOUNDS:
            bounds.append(at)
        elif kind == dg.DagsterEventType.STEP_START:
            step["start"] = at
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            step["end"] = at
        elif message.startswith("Step blocked by limit"):
            step.setdefault("blocked", at)
        elif message.startswith("Submitting celery task"):
            step["submitted"] = at
        elif message.startswith("Executing steps"):
            step["picked"] = at
    spans: dict[str, list[tuple[float, float]]] = {kind: [] for kind in SPAN_ORDER}
    for step in marks.values():
        begun = step.get("submitted", step.get("start"))
        if "start" in step and "end" in step:
            spans["steps"].append((step["start"], step["end"]))
        if "blocked" in step and begun is not None:
            spans["pool"].append((step["blocked"], begun))
        if "submitted" in step and "picked" in step:
            spans["queue"].append((step["submitted"], step["picked"]))
    spans["orchestration"] = [(min(bounds), max(bounds))] if bounds else []
    return split_time(spans)


def measure(
    name: str, spec: Path, env: dict, candidates: Candidates, counts: list[int]
) -> list[dict]:
    """Sequential and concurrent releases on one set-up; a row per N."""
    for model in MODELS:  # untimed: production, warehouses and workers warm
        releases(spec, env, [candidates.next(model)])
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    sequential = [releases(spec, env, [candidates.next(MODELS[i])]) for i in range(max(counts))]
    rows = []
    for n in counts:
        wall, done = releases(spec, env, [candidates.next(MODELS[i]) for i in range(n)])
        before = sum(s for s, _ in sequential[:n])
        parts = [where_time_goes(instance, read_manifest(f).sha256) for f, _, _ in done]
        total = sum(seconds for _, _, seconds in done)
        row = {
            "setup": name, "n": n, "sequential_s": round(before, 1), "concurrent_s": round(wall, 1),
            "ratio": round(wall / before, 2), "per_min_sequential": round(60 * n / before, 2),
            "per_min_concurrent": round(60 * n / wall, 2),
            "exit_codes": [code for _, code, _ in done],
            "sequential_exit_codes": [d[0][1] for _, d in sequential[:n]],
        }  # fmt: skip
        for key in SPAN_ORDER:
            row[f"{key}_s"] = round(sum(p[key] for p in parts), 1)
        row["other_s"] = round(total - sum(row[f"{key}_s"] for key in SPAN_ORDER), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def embedded(root: Path) -> dict:
    home = root / "home"
    return {**os.environ, "ML_RELEASE_HOME": str(home), "DAGSTER_HOME": str(root / "dagster"),
            "ML_RELEASE_RUNTIME_DIR": RUNTIME_DIR}  # fmt: skip


def postgres_celery(root: Path, stack: ExitStack) -> dict:
    from psycopg.conninfo import conninfo_to_dict

    pg = stack.enter_context(postgres_server())
    db = conninfo_to_dict(pg.create_database("dagster"))
    dagster_home = root / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(
        PROJECT / "docs" / "examples" / "dagster-postgres.yaml", dagster_home / "dagster.yaml"
    )
    env = {
        **embedded(root),
        "DAGSTER_PG_HOST": db["host"], "DAGSTER_PG_PORT": db["port"], "DAGSTER_PG_USER": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"], "DAGSTER_PG_DB": db["dbname"],
        "ML_RELEASE_REGISTRY_URL": pg.create_schema("registry"),
    }  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_PG_")})
    redis = stack.enter_context(redis_server())
    workers = CeleryWorkers(redis.url, env, count=2, project=PROJECT).start()
    stack.callback(workers.stop)
    return {**env, keys.CELERY_BROKER_ENV: redis.url}


def main() -> None:
    # A stopped benchmark still stops the servers and workers it started (ExitStack).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="embedded,postgres-celery")
    parser.add_argument("--counts", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="ml-release-bench-"))
    data = generate(seed=11, **SIZES)
    candidates = Candidates(scratch / "published", data)
    spec = write_spec(scratch)
    rows = []
    try:
        for mode in args.modes.split(","):
            root = scratch / mode
            write_demo_data(root / "home" / "demo", data)
            with ExitStack() as stack:
                env = embedded(root) if mode == "embedded" else postgres_celery(root, stack)
                rows += measure(mode, spec, env, candidates, counts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    columns = ["sequential_s", "concurrent_s", "ratio", "per_min_concurrent"]
    columns += [f"{key}_s" for key in (*SPAN_ORDER, "other")]
    print("\n" + " ".join(["set-up".ljust(16), "N".rjust(2), *(c.rjust(14) for c in columns)]))
    for r in rows:
        cells = [
            r["setup"].ljust(16),
            str(r["n"]).rjust(2),
            *(str(r[c]).rjust(14) for c in columns),
        ]
        print(" ".join(cells), " exit codes", r["exit_codes"])
    print("ratio: concurrent wall time / the same N releases one after another (target <= 0.7)")


if __name__ == "__main__":
    main()
