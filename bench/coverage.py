"""Coverage benchmark: a full `ml-release coverage` run against one ordinary release run.

In a temporary ML_RELEASE_HOME with the demo data (default sizes, seed 7) and the project's
release.yaml, as a user runs them, each a fresh `ml-release` process:

1. `ml-release run`: the first release (no production yet; promoted), untimed set-up;
2. the floor: `ml-release run --candidate <a retrain>`: one ordinary release run against
   production, every gate of the spec (serving and shadow included);
3. `ml-release coverage`: the control and every failure mode that applies.

Target: coverage under half of (number of modes + 1) x the floor, which means the runs share
work instead of repeating it.

Usage: `.venv/bin/python bench/coverage.py [--modes a,b,...]`
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = 0.5


def run(env: dict, *args: str) -> tuple[float, str, int]:
    """Seconds, output and exit code of one `ml-release` process."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "ml-release"), "--spec", str(PROJECT / "release.yaml"), *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", help="comma-separated modes (default: all that apply)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-coverage-"))
    env = {
        **os.environ,
        "ML_RELEASE_HOME": str(tmp / "home"),
        "DAGSTER_HOME": str(tmp / "dagster"),
        "ML_RELEASE_RUNTIME_DIR": os.environ.get(
            "ML_RELEASE_RUNTIME_DIR", str(PROJECT / ".ml_release" / "runtime")
        ),
        "COLUMNS": "200",
    }
    load_before = os.getloadavg()[0]
    try:
        print("generating the demo data and building the first production model", flush=True)
        subprocess.run([str(BIN / "ml-release"), "demo-data"], env=env, check=True, cwd=PROJECT)
        seconds, out, code = run(env, "run")
        if code != 0:
            raise SystemExit(f"the first release was not promoted:\n{out}")
        print(f"first release: {seconds:.1f} s", flush=True)
        retrain = tmp / "retrain.py"
        retrain.write_text(RETRAIN)
        candidate = subprocess.run(
            [sys.executable, str(retrain), str(PROJECT / "release.yaml"), str(tmp / "published")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=PROJECT,
        ).stdout.strip()
        print("the floor: one ordinary release run against production", flush=True)
        floor, out, code = run(env, "run", "--candidate", candidate)
        if code != 0:
            raise SystemExit(f"the floor's release was not promoted:\n{out}")
        print(f"floor: {floor:.1f} s; now the coverage run", flush=True)
        extra = ["--modes", args.modes] if args.modes else []
        coverage, out, code = run(env, "coverage", "--out", str(tmp / "reports"), *extra)
        matrix = (tmp / "reports" / "coverage.md").read_text()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = re.search(r"(\d+) of (\d+) failure modes blocked", matrix)
    blocked, modes = int(found.group(1)), int(found.group(2))
    budget = TARGET * (modes + 1) * floor
    print(
        f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average before "
        f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}; exit code of coverage: {code}\n"
    )
    print("| measurement | seconds | ratio | target | met |")
    print("|---|---:|---:|---|---|")
    print(f"| floor: one `ml-release run` against production | {floor:.1f} | 1.00x | | |")
    print(
        f"| `ml-release coverage`: control + {modes} modes ({blocked} blocked) | {coverage:.1f} "
        f"| {coverage / floor:.2f}x | < {TARGET} x ({modes} + 1) x floor = {budget:.1f} s "
        f"| {'PASS' if coverage < budget else 'FAIL'} |"
    )
    print(
        f"| per mode (coverage / (modes + 1)) | {coverage / (modes + 1):.1f} | "
        f"{coverage / (modes + 1) / floor:.2f}x | | |"
    )
    print("\n" + matrix)


# A retrain of the spec's model with C=0.5: a healthy candidate, published as a user would.
RETRAIN = """
import sys
from pathlib import Path

from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.model import build_pipeline
from ml_release.publish import publish_candidate
from ml_release.spec import load_spec

import pandas as pd

spec = load_spec(Path(sys.argv[1]))
training = pd.read_parquet(spec.source_for("training_snapshot").path)
model = build_pipeline(
    spec.features.code, spec.features.numeric, spec.features.categorical,
    spec.model.estimator, {"C": 0.5},
).fit(training[list(REQUIRED_COLUMNS)], training[spec.data.label])
print(publish_candidate(model, spec, version="bench-retrain", home=Path(sys.argv[2])))
"""


if __name__ == "__main__":
    main()
