"""Release benchmark: one `ml-release run` through Dagster beside the raw parts of its work.

At the held-out size of a real public dataset (160,000 labelled evaluation rows, 167,000
serving rows; the demo generator's columns) with the contract and evaluation gates of
release.yaml (no model servers), in a temporary ML_RELEASE_HOME:

- a first release makes model A production (untimed);
- **the release**: `release_in_process` for candidate B, A in production, wall time; then where
  it went, from the run's own step timings (each step, and the time outside every step);
- **the raw parts** of the same work, measured in this process after it: reading the three
  sources (Parquet, the logged request JSON parsed), the feature code on every row, the data
  contract's profiles of the features (training as the reference, holdout and serving), both models
  scoring the evaluation rows and the labelled serving rows, and every model-quality gate's
  paired interval (`ml_release.evaluation.run.judge`, global and per segment).

Prints the ratio release / raw parts (target: <= 2x) and the release's wall time (target:
under 15 s on 2 cores). Usage: `.venv/bin/python bench/release.py [--rows 160000]`
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[1]
TARGET_RATIO, TARGET_SECONDS = 2.0, 15.0


def _spec(folder: Path):
    """release.yaml without the serving and shadow gates, written into `folder`."""
    from ml_release.gates.serving import serving_gates
    from ml_release.gates.shadow import shadow_gates
    from ml_release.spec import load_spec

    servers = {g.name for g in [*serving_gates(), *shadow_gates()]}
    data = yaml.safe_load((PROJECT / "release.yaml").read_text())
    data["gates"] = [g for g in data["gates"] if g["name"] not in servers]
    path = folder / "release.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def _models(training: pd.DataFrame):
    """Two fitted pipelines of the demo's features: A (production) and B (the candidate)."""
    from ml_release.demo.features import CATEGORICAL, NUMERIC
    from ml_release.model import build_pipeline

    fitted = []
    for c in (1.0, 0.5):
        model = build_pipeline(
            "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": c}
        )
        fitted.append(model.fit(training, training["defaulted"]))
    return fitted


def _step_times(instance, run_id: str) -> tuple[float, dict[str, float]]:
    stats = instance.get_run_stats(run_id)
    steps = {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(run_id)
        if s.start_time and s.end_time
    }
    return stats.end_time - stats.start_time, steps


def profile_features(spec, features: dict[str, pd.DataFrame]) -> None:
    """The data contract's profiles: training as the reference, holdout and serving on its bins."""
    import duckdb

    from ml_release.contract.profile import profile_reference
    from ml_release.contract.run import contract_kinds, reference_bins
    from ml_release.contract.target_profile import profile_target

    connection = duckdb.connect()
    for name, frame in features.items():
        connection.register(name, frame)
    reference = profile_reference(
        connection, "training", [], contract_kinds(spec), reference_bins(spec)
    )
    for name in ("holdout", "serving"):
        profile_target(connection, name, [], reference, {})
    connection.close()


def raw_parts(spec, paths: dict[str, Path], models) -> dict[str, float]:
    """Seconds of each raw part of the release's work, measured in this process."""
    from ml_release.demo.features import REQUIRED_COLUMNS, compute_features
    from ml_release.evaluation.data import EvalSet
    from ml_release.evaluation.run import judge, model_gates
    from ml_release.request_fields import load_request

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    log = frames["serving_log"]
    texts = log[spec.data.serving_log.request_column]
    requests = pd.DataFrame([load_request(text) for text in texts])  # the release's own parser
    seconds["read the sources (Parquet, request JSON)"] = time.perf_counter() - started

    started = time.perf_counter()
    raw = {
        "training": frames["training"][list(REQUIRED_COLUMNS)],
        "holdout": frames["evaluation"][list(REQUIRED_COLUMNS)],
        "serving": requests[list(REQUIRED_COLUMNS)],
    }
    features = {name: compute_features(frame) for name, frame in raw.items()}
    seconds["feature code on every row"] = time.perf_counter() - started

    started = time.perf_counter()
    profile_features(spec, features)
    seconds["profile the features (the contract)"] = time.perf_counter() - started

    labelled = log[spec.data.label].notna().to_numpy()
    sets_rows = {
        "holdout": (frames["evaluation"], raw["holdout"]),
        "serving": (log[labelled], raw["serving"][labelled]),
    }
    started = time.perf_counter()
    scores = {
        name: [m.predict_proba(features)[:, 1] for m in models]
        for name, (_, features) in sets_rows.items()
    }
    seconds["both models score both sets"] = time.perf_counter() - started

    sets = {
        name: EvalSet(
            name,
            np.arange(len(rows)),
            rows[spec.data.label].to_numpy(float),
            scores[name][1],
            scores[name][0],
            {s: features[s].astype(str).to_numpy() for s in spec.data.segments},
            False,
        )
        for name, (rows, features) in sets_rows.items()
    }
    started = time.perf_counter()
    for gate in model_gates(spec):
        judge(gate, sets, spec)
    seconds["every quality gate's paired interval"] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=160_000, help="evaluation rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        home = Path(tmp) / "home"
        sys.path.insert(0, str(PROJECT))  # the project's assets/, checks/, resources/
        os.environ["ML_RELEASE_HOME"] = str(home)
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        from ml_release.demo.generate import generate, write_demo_data
        from ml_release.home import demo_data_dir
        from ml_release.jobs import ensure_instance, release_in_process
        from ml_release.publish import publish_candidate

        data = generate(
            seed=7,
            n_training=args.rows,
            n_evaluation=args.rows,
            n_serving=round(args.rows * 167 / 160),
        )
        paths = write_demo_data(demo_data_dir(), data)
        spec = _spec(Path(tmp))
        production, candidate = _models(data.training)
        published = Path(tmp) / "published"
        first = publish_candidate(production, spec, version="A", home=published)
        second = publish_candidate(candidate, spec, version="B", home=published)
        instance = ensure_instance(home / "dagster")
        assert release_in_process(spec, first, instance=instance).exit_code == 0
        started = time.perf_counter()
        outcome = release_in_process(spec, second, instance=instance)
        release = time.perf_counter() - started
        run_seconds, steps = _step_times(instance, outcome.run_id)
        parts = raw_parts(spec, paths, (production, candidate))

    raw = sum(parts.values())
    print(
        f"one release at {args.rows:,} evaluation and {len(data.serving_log):,} serving rows "
        f"(exit code {outcome.exit_code}), 2 cores"
    )
    print(f"  release (release_in_process)     {release:7.2f} s")
    print(f"  raw parts, summed                {raw:7.2f} s")
    for name, value in parts.items():
        print(f"    {name:44s} {value:7.2f} s")
    print(f"  ratio release / raw parts        {release / raw:7.2f}x  (target <= {TARGET_RATIO}x)")
    print(
        f"  release wall time target         {'met' if release < TARGET_SECONDS else 'missed'}"
        f" (< {TARGET_SECONDS:.0f} s)"
    )
    print("where the release's time went:")
    print(f"    outside the Dagster run (prepare, record)  {release - run_seconds:7.2f} s")
    print(
        f"    inside the run, outside every step         {run_seconds - sum(steps.values()):7.2f} s"
    )
    for key, value in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"    step {key:39s} {value:7.2f} s")


if __name__ == "__main__":
    main()
