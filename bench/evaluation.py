"""Benchmark of the evaluation: every metric with its paired interval, global and per segment.

Three measurements on the same generated rows, each in its own child process (`--measure METHOD
--rows N`) that prints one JSON line: the wall time of the work (time.perf_counter, data
generation and imports excluded and reported apart) and the child's peak RSS (ru_maxrss, nothing
subtracted). P is the project (`compare` + `compute_metrics`), the floor is scikit-learn point
estimates only, naive is scikit-learn per bootstrap resample. See bench/README.md.
`--task regression` or `--task multiclass` runs bench/evaluation_tasks.py instead.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

METRICS = (
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "positive_rate",
)
# segment column: shares of its values (6 regions and 4 channels: 10 segments)
SEGMENTS = {
    "region": (0.30, 0.22, 0.16, 0.13, 0.11, 0.08),
    "channel": (0.45, 0.30, 0.15, 0.10),
}
PREVALENCE = 0.20
SEPARATION = {"candidate": 1.12, "baseline": 1.05}  # AUC = Phi(d / sqrt(2)): 0.785, 0.771
NOISE_CORRELATION = 0.7  # the two models' scores share most of their noise
CONFIDENCE, RESAMPLES, THRESHOLD, BINS = 0.95, 1000, 0.5, 10
METHODS = {
    "floor": "floor: scikit-learn point estimates, both models (no intervals)",
    "project": "P: compare() for every metric + compute_metrics(), both models",
    "naive": "naive: scikit-learn per bootstrap resample (B=1000)",
    "agreement": "agreement: PR AUC and ECE intervals, row bootstrap vs little bootstrap",
}
TARGET_RATIO, TARGET_SECONDS = 5.0, 10.0


def generate(rows: int, seed: int = 1) -> dict:
    """Labels, two correlated probability scores and two segment columns, from one seed.

    Scores are the binormal posterior P(y=1 | s) with s = d y + noise (unit variance), so they
    are calibrated probabilities; the noises of the two models have correlation 0.7.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < PREVALENCE).astype(np.int8)
    shared, own = rng.standard_normal(rows), rng.standard_normal((2, rows))
    prior = np.log(PREVALENCE / (1 - PREVALENCE))
    data = {"y": y}
    for (name, d), noise in zip(SEPARATION.items(), own, strict=True):
        s = d * y + np.sqrt(NOISE_CORRELATION) * shared + np.sqrt(1 - NOISE_CORRELATION) * noise
        data[name] = 1 / (1 + np.exp(-(d * s - d * d / 2 + prior)))
    for column, shares in SEGMENTS.items():
        data[column] = rng.choice(len(shares), rows, p=shares).astype(np.int8)
    return data


def slices(data: dict, rows: int | None = None) -> Iterator[tuple[str, dict]]:
    """The global set, then every segment: (name, {y, candidate, baseline})."""
    keep = slice(None) if rows is None else slice(0, rows)
    part = {k: data[k][keep] for k in ("y", "candidate", "baseline")}
    yield "(all)", part
    for column, shares in SEGMENTS.items():
        values = data[column][keep]
        for value in range(len(shares)):
            mask = values == value
            yield f"{column}={value}", {k: v[mask] for k, v in part.items()}


def numpy_ece(y, score) -> float:
    """ECE with 10 equal-width bins (a, b], the first [0, 0.1]: the project's definition."""
    import numpy as np

    bins = np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], score)
    return float(np.abs(np.bincount(bins, y - score, BINS)).sum() / len(y))


def sklearn_metrics() -> dict:
    """Each metric as a scikit-learn (or numpy) call on (y, score)."""
    import numpy as np
    from sklearn import metrics

    return {
        "precision": lambda y, s: metrics.precision_score(y, s >= THRESHOLD, zero_division=0),
        "recall": lambda y, s: metrics.recall_score(y, s >= THRESHOLD, zero_division=0),
        "f1": lambda y, s: metrics.f1_score(y, s >= THRESHOLD, zero_division=0),
        "roc_auc": metrics.roc_auc_score,
        "pr_auc": metrics.average_precision_score,
        "log_loss": lambda y, s: metrics.log_loss(y, s, labels=[0, 1]),
        "brier": metrics.brier_score_loss,
        "ece": numpy_ece,
        "positive_rate": lambda y, s: float(np.mean(s >= THRESHOLD)),
    }


def _timed(spent: dict, key: str, call, *args, **kwargs):
    started = time.perf_counter()
    result = call(*args, **kwargs)
    spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
    return result


def _floor(rows: int, options: argparse.Namespace) -> Iterator[dict]:
    data, functions = generate(rows), sklearn_metrics()
    spent: dict[str, float] = {}
    values: dict[str, float] = {}
    yield {}
    for where, part in slices(data):
        for model in ("candidate", "baseline"):
            for name, function in functions.items():
                value = _timed(spent, name, function, part["y"], part[model])
                if where == "(all)" and model == "candidate":
                    values[name] = float(value)
    yield {"seconds_by_metric": spent, "global_candidate": values}


def _project(rows: int, options: argparse.Namespace) -> Iterator[dict]:
    from ml_release.evaluation.compare import compare
    from ml_release.metrics import compute_metrics
    from ml_release.spec import EvaluationSpec

    little_above = EvaluationSpec().little_bootstrap_above  # the project's default

    data = generate(rows)
    spent: dict[str, float] = {}
    verdicts: dict[str, int] = {}
    values: dict[str, float] = {}
    yield {}
    for where, part in slices(data):
        y, candidate, baseline = part["y"], part["candidate"], part["baseline"]
        for model in (candidate, baseline):
            point = _timed(spent, "compute_metrics", compute_metrics, y, model, threshold=THRESHOLD)
            if where == "(all)" and model is candidate:
                values = {name: v.value for name, v in point.items()}
        for metric in METRICS:
            comparison = _timed(
                spent,
                metric,
                compare,
                metric,
                y,
                candidate,
                baseline,
                confidence=CONFIDENCE,
                threshold=THRESHOLD,
                resamples=RESAMPLES,
                little_above=little_above,
            )
            side = "above 0" if comparison.low > 0 else "below 0" if comparison.high < 0 else "0"
            verdicts[side] = verdicts.get(side, 0) + 1
    yield {"seconds_by_metric": spent, "intervals": verdicts, "global_candidate": values}


def _naive(rows: int, options: argparse.Namespace) -> Iterator[dict]:
    import numpy as np

    subset = min(rows, options.naive_rows)
    data, functions = generate(rows), sklearn_metrics()
    rng = np.random.default_rng(0)
    spent: dict[str, float] = {}
    yield {}
    for _, part in slices(data, subset):
        y, n = part["y"], len(part["y"])
        deltas = {name: [] for name in functions}
        for _ in range(options.naive_resamples):
            rows_drawn = rng.integers(0, n, n)
            yb = y[rows_drawn]
            cb, bb = part["candidate"][rows_drawn], part["baseline"][rows_drawn]
            for name, function in functions.items():
                on_candidate = _timed(spent, name, function, yb, cb)
                deltas[name].append(on_candidate - _timed(spent, name, function, yb, bb))
        for values in deltas.values():  # the percentile interval, as the project computes it
            np.quantile(values, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    yield {"seconds_by_metric": spent, "subset_rows": subset, "resamples": options.naive_resamples}


def _agreement(rows: int, options: argparse.Namespace) -> Iterator[dict]:
    """PR AUC and ECE intervals from the row bootstrap and from the little bootstrap, per slice."""
    from ml_release.evaluation.compare import compare
    from ml_release.spec import EvaluationSpec

    little_above = EvaluationSpec().little_bootstrap_above
    data = generate(rows)
    yield {}
    found = []
    for where, part in slices(data):
        for metric in ("pr_auc", "ece"):
            args = (metric, part["y"], part["candidate"], part["baseline"])
            row, little = (
                compare(*args, confidence=CONFIDENCE, resamples=RESAMPLES, little_above=above)
                for above in (None, little_above)
            )
            found.append(
                {
                    "slice": where,
                    "metric": metric,
                    "rows": len(part["y"]),
                    "row": [row.low, row.high],
                    "little": [little.low, little.high],
                    "method": little.method,
                }
            )
    yield {"agreement": found}


def agreement_report(found: list[dict]) -> None:
    """How far the little bootstrap's interval ends are from the row bootstrap's."""
    lines = [
        "| slice | metric | rows | row bootstrap | little bootstrap | ends apart / half-width |"
        " width ratio |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for r in found:
        (a, b), (c, d) = r["row"], r["little"]
        half = (b - a) / 2
        apart = max(abs(c - a), abs(d - b)) / half if half > 0 else 0.0
        lines.append(
            f"| {r['slice']} | {r['metric']} | {r['rows']:,} | [{a:.5f}, {b:.5f}] "
            f"| [{c:.5f}, {d:.5f}] | {apart:.2f} | {(d - c) / (b - a):.2f} |"
        )
    print("\n".join(lines))


def _peak_mib() -> float:
    """ru_maxrss of this process (KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, rows: int, options: argparse.Namespace) -> None:
    """Child: run one method, print its wall time and peak RSS as one JSON line."""
    started = time.perf_counter()
    methods = {"floor": _floor, "project": _project, "naive": _naive, "agreement": _agreement}
    work = methods[method](rows, options)
    next(work)  # imports and data generation, timed apart
    ready, ready_rss = time.perf_counter(), _peak_mib()
    extra = next(work)  # the measured work
    seconds = time.perf_counter() - ready
    report = {"seconds": seconds, "setup_seconds": ready - started, "peak_rss_mib": _peak_mib()}
    print(json.dumps(report | {"setup_rss_mib": ready_rss} | extra))


def _child(options: argparse.Namespace, method: str) -> dict:
    # The parent never imports numpy: a child spawned with vfork starts with the parent's
    # ru_maxrss, so the parent must stay small for the children's peak RSS to mean anything.
    command = [sys.executable, str(Path(__file__)), "--measure", method, "--rows", options.rows]
    command += ["--naive-rows", options.naive_rows, "--naive-resamples", options.naive_resamples]
    command = [str(part) for part in command]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(output)


def _best(options: argparse.Namespace, method: str, repeat: int) -> dict:
    runs = [_child(options, method) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return best | {"peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def report(results: dict[str, dict], rows: int) -> None:
    """Print the measurements, the ratios and the targets, and P's time per metric."""
    naive = results["naive"]
    scale = (rows / naive["subset_rows"]) * (RESAMPLES / naive["resamples"])
    naive["scaled_seconds"] = naive["seconds"] * scale
    lines = ["| measurement | wall s | peak RSS MiB | RSS after setup MiB | setup s |"]
    lines.append("|---|---:|---:|---:|---:|")
    for method, r in results.items():
        if method == "agreement":
            continue
        wall = f"{r['seconds']:.2f}"
        if method == "naive":
            wall = (
                f"{r['scaled_seconds']:,.0f} (measured {r['seconds']:.1f} s on "
                f"{r['subset_rows']:,} rows, B={r['resamples']}, x{scale:g})"
            )
        lines.append(
            f"| {METHODS[method]} | {wall} | {r['peak_rss_mib']:.0f} "
            f"| {r['setup_rss_mib']:.0f} | {r['setup_seconds']:.2f} |"
        )
    p, floor = results["project"]["seconds"], results["floor"]["seconds"]
    met = {True: "met", False: "NOT met"}
    lines += ["", "| P / floor (<= 5x) | P wall (< 10 s) | naive (scaled) / P |", "|---|---|---|"]
    lines.append(
        f"| {p / floor:.1f}x {met[p / floor <= TARGET_RATIO]} "
        f"| {p:.1f} s {met[p < TARGET_SECONDS]} | {naive['scaled_seconds'] / p:.0f}x |"
    )
    lines += ["", "| metric | P s | floor s | P / floor |", "|---|---:|---:|---:|"]
    by_p, by_floor = results["project"]["seconds_by_metric"], results["floor"]["seconds_by_metric"]
    for metric in sorted(by_p, key=by_p.get, reverse=True):
        f = by_floor.get(metric)
        ratio = f"{by_p[metric] / f:.1f}x" if f else ""
        lines.append(f"| {metric} | {by_p[metric]:.2f} | {f or 0:.2f} | {ratio} |")
    print("\n".join(lines))
    print(f"\nP intervals for delta: {results['project']['intervals']}")
    ours, theirs = results["project"]["global_candidate"], results["floor"]["global_candidate"]
    gap = max(abs(ours[name] - theirs[name]) for name in METRICS)
    print(f"P's global point values vs scikit-learn's: max |difference| {gap:.1e}")


def main() -> None:
    """Parse the options; run one measurement (child) or the whole benchmark (parent)."""
    if "--task" in sys.argv:  # regression and multi-class: bench/evaluation_tasks.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from evaluation_tasks import main as tasks_main

        return tasks_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="evaluation rows")
    parser.add_argument("--quick", action="store_true", help="100k rows, small naive run")
    parser.add_argument("--repeat", type=int, default=1, help="runs of P and naive; best kept")
    parser.add_argument("--naive-rows", type=int, default=50_000, help="rows naive is timed on")
    parser.add_argument("--naive-resamples", type=int, default=RESAMPLES, help="naive's B")
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="also compare the little and the row bootstrap's intervals per slice (~80 s more)",
    )
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        return measure(options.measure, options.rows, options)
    if options.quick:
        options.rows, options.naive_rows, options.naive_resamples = 100_000, 5_000, 100
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    results = {
        "floor": _best(options, "floor", 3),  # short: best of 3 always
        "project": _best(options, "project", options.repeat),
        "naive": _best(options, "naive", options.repeat),
    }
    if options.agreement:
        results["agreement"] = _child(options, "agreement")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    segments = sum(len(shares) for shares in SEGMENTS.values())
    print(f"\n{options.rows:,} rows, the global set and {segments} segments")
    report(results, options.rows)
    if options.agreement:
        print("\nPR AUC and ECE: row bootstrap vs little bootstrap, 95% intervals for delta")
        agreement_report(results["agreement"]["agreement"])


if __name__ == "__main__":
    main()
