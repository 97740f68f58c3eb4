"""Benchmark of the regression and multi-class evaluation at 1M rows, against its point floor.

`python bench/evaluation.py --task regression` (or `multiclass`) runs this module. On the same
generated rows, in this process:

- floor: scikit-learn point estimates of every metric for both models, on the global set and
  every segment (10 segments; multi-class: every class's recall too), no interval;
- P: the project's gates for every metric (`<metric>_vs_baseline` and
  `segment_<metric>_vs_baseline`, plus `class_recall_vs_baseline`): point values, paired
  intervals at Bonferroni confidence, verdicts.
Both are timed with time.perf_counter, best of `--repeat`; data generation is not timed. Target
as for binary: P <= 5x the floor and P < 10 s at 1M rows.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEGMENTS = {"region": (0.30, 0.22, 0.16, 0.13, 0.11, 0.08), "channel": (0.45, 0.30, 0.15, 0.10)}
CLASSES = 5
TARGET_RATIO, TARGET_SECONDS = 5.0, 10.0
REGRESSION_GATES = {
    "mae": {"max_relative_drop": 0.02},
    "rmse": {"max_relative_drop": 0.02},
    "pinball_loss": {"max_relative_drop": 0.02, "quantile": 0.9},
    "calibration_in_the_large": {"max_drop": 1.0},
}
MULTICLASS_GATES = {
    "log_loss": {"max_relative_drop": 0.02},
    "macro_f1": {"max_drop": 0.01},
    "top_k_accuracy": {"max_drop": 0.01, "k": 2},
    "class_recall": {"max_drop": 0.01},
}


def segments(rng, rows):
    return {c: rng.choice(len(s), rows, p=s).astype(str) for c, s in SEGMENTS.items()}


def regression_data(rows: int, seed: int = 1):
    """Gamma outcomes; two correlated predictors, the candidate slightly better."""
    from ml_release.evaluation.task_data import RegressionSet

    rng = np.random.default_rng(seed)
    y = rng.gamma(3.0, 40.0, rows)
    shared = rng.normal(0, 25, rows)
    candidate = y + shared + rng.normal(0, 15, rows)
    baseline = y + shared + rng.normal(1, 17, rows)
    ids = np.arange(rows).astype(str)
    return RegressionSet("holdout", ids, y, candidate, baseline, segments(rng, rows), False)


def multiclass_data(rows: int, seed: int = 1):
    """Five classes; softmax of noisy logits, the candidate slightly sharper."""
    from ml_release.evaluation.task_data import MulticlassSet

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, rows)
    shared = rng.normal(0, 1, (rows, CLASSES))
    models = []
    for strength in (1.6, 1.5):
        logits = shared + rng.normal(0, 0.6, (rows, CLASSES))
        logits[np.arange(rows), y] += strength
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        models.append(p / p.sum(axis=1, keepdims=True))
    ids = np.arange(rows).astype(str)
    names = [f"c{i}" for i in range(CLASSES)]
    return MulticlassSet("holdout", ids, y, *models, segments(rng, rows), False, names)


def masks(data):
    yield np.ones(len(data.y), bool)
    for values in data.segments.values():
        for value in np.unique(values):
            yield values == value


def bias(y, scores) -> float:
    """Calibration-in-the-large with numpy: scikit-learn has no function for it."""
    return abs(np.mean(y) - np.mean(scores))


def argmax_then(metric):
    """`metric` on the most probable class (the argmax is part of the floor's work)."""

    def call(y, scores, **kw):
        return metric(y, np.argmax(scores, axis=1), **kw)

    return call


def regression_floor(data) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_pinball_loss, root_mean_squared_error

    spent = dict.fromkeys(REGRESSION_GATES, 0.0)
    for mask in masks(data):
        y = data.y[mask]
        for scores in (data.candidate[mask], data.baseline[mask]):
            for metric, call, kw in (
                ("mae", mean_absolute_error, {}),
                ("rmse", root_mean_squared_error, {}),
                ("pinball_loss", mean_pinball_loss, {"alpha": 0.9}),
                ("calibration_in_the_large", bias, {}),
            ):
                started = time.perf_counter()
                call(y, scores, **kw)
                spent[metric] += time.perf_counter() - started
    return spent


def multiclass_floor(data) -> dict[str, float]:
    from sklearn.metrics import f1_score, log_loss, recall_score, top_k_accuracy_score

    labels = np.arange(CLASSES)
    spent = dict.fromkeys(MULTICLASS_GATES, 0.0)
    for mask in masks(data):
        y = data.y[mask]
        for scores in (data.candidate[mask], data.baseline[mask]):
            for metric, call, kw in (
                ("log_loss", log_loss, {"labels": labels}),
                ("macro_f1", argmax_then(f1_score), {"average": "macro"}),
                ("top_k_accuracy", top_k_accuracy_score, {"k": 2, "labels": labels}),
                ("class_recall", argmax_then(recall_score), {"average": None, "labels": labels}),
            ):
                started = time.perf_counter()
                call(y, scores, **kw)
                spent[metric] += time.perf_counter() - started
    return spent


def project(data, task: str) -> tuple[dict[str, float], dict[str, str]]:
    """Every gate of every metric, timed per metric; and each global interval."""
    from ml_release.evaluation.task_gates import judge_task_gate
    from ml_release.evaluation.task_reports import _multiclass, _regression
    from ml_release.spec import EvaluationSpec, GateSpec

    regression = task == "regression"
    gates, measures = (
        (REGRESSION_GATES, _regression) if regression else (MULTICLASS_GATES, _multiclass)
    )
    settings = EvaluationSpec()
    spent, intervals = {}, {}
    for metric, params in gates.items():
        names = [f"{metric}_vs_baseline", f"segment_{metric}_vs_baseline"]
        started = time.perf_counter()
        for name in names:
            extra = {"min_support": 500} if name.startswith("segment_") else {}
            gate = GateSpec.model_validate({"name": name, **params, **extra})
            result = judge_task_gate(gate, measures, data, settings, list(SEGMENTS), "invalid")
            if not name.startswith("segment_") and result.interval:
                low, high = result.interval
                intervals[metric] = f"[{low:+.4g}, {high:+.4g}] {result.verdict.value}"
        spent[metric] = time.perf_counter() - started
    return spent, intervals


def best(call, repeat: int):
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = call()
        runs.append((time.perf_counter() - started, out))
    return min(runs, key=lambda r: r[0])


def run(task: str, rows: int, repeat: int) -> None:
    """Measure the floor and P on `rows` rows of `task` and print the report."""
    data = regression_data(rows) if task == "regression" else multiclass_data(rows)
    floor_call = regression_floor if task == "regression" else multiclass_floor
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    floor_seconds, floor_by = best(lambda: floor_call(data), max(3, repeat))
    p_seconds, (p_by, intervals) = best(lambda: project(data, task), repeat)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    met = {True: "met", False: "NOT met"}
    extra = f", {CLASSES} classes" if task != "regression" else ""
    lines = [
        f"{task}: {rows:,} rows, the global set and 10 segments{extra}",
        "",
        "| P / floor (<= 5x) | P wall (< 10 s) | floor wall |",
        "|---|---|---|",
        f"| {p_seconds / floor_seconds:.1f}x {met[p_seconds / floor_seconds <= TARGET_RATIO]} "
        f"| {p_seconds:.2f} s {met[p_seconds < TARGET_SECONDS]} | {floor_seconds:.2f} s |",
        "",
        "| metric | P s | floor s | P / floor | global interval (candidate - production) |",
        "|---|---:|---:|---:|---|",
    ]
    for metric in p_by:
        ratio = p_by[metric] / floor_by[metric]
        lines.append(
            f"| {metric} | {p_by[metric]:.2f} | {floor_by[metric]:.2f} | {ratio:.1f}x "
            f"| {intervals.get(metric, 'per class')} |"
        )
    print("\n".join(lines))


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("regression", "multiclass"), required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    run(options.task, options.rows, options.repeat)


if __name__ == "__main__":
    main()
