"""Power, false blocks and interval coverage of the regression and multi-class segment gates.

The same protocol as `bench/gate_power.py` (binary ROC-AUC), by simulation with known truth,
every candidate through the gate code the assets use (`judge_task_gate` on an `EvalSet`):
8 segments of 5,000 rows, `min_support: 500`, `confidence: 0.95`, Bonferroni over the 8.

- regression, `segment_mae_vs_baseline`, `max_drop: 0.5`: residuals e = s + u with s ~ N(0, 10^2)
  shared by both models (the same rows) and u ~ N(0, 4^2) each model's own; a normal residual of
  standard deviation sigma has MAE sigma * sqrt(2 / pi), so the true delta is analytic. In the
  degraded segment the candidate's own noise is raised until its MAE is `drop` higher.
- multi-class, `segment_macro_f1_vs_baseline`, `max_drop: 0.03`: 4 equally likely classes,
  logits = strength * onehot(y) + shared N(0, 1) + own N(0, 0.5^2); the class predicted is the
  argmax. True macro-F1 per strength is a Monte Carlo value on 2M rows (its standard error,
  ~3e-4, is a tenth of the intervals' half-width); the degraded strength is found by bisection.

Scenarios: identical (the candidate as good as production: any `fail` is a false block), the
stated drop in one random segment (catch = exactly that segment fails), a smaller drop.
Coverage: each segment's 95% interval (no Bonferroni) holds the true delta.

    .venv/bin/python bench/gate_power.py --tasks [--reps 200] [--seed 0]
    .venv/bin/python bench/gate_power_tasks.py [--reps 200] [--seed 0]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_release.evaluation.task_data import MulticlassSet, RegressionSet
from ml_release.evaluation.task_gates import judge_task_gate
from ml_release.evaluation.task_reports import _multiclass, _regression
from ml_release.metrics.multiclass import macro_f1
from ml_release.spec import EvaluationSpec, GateSpec
from ml_release.stats import paired_mean_delta
from ml_release.stats.tasks import paired_macro_f1_delta

SEGMENTS, ROWS = 8, 5000
SHARED_SD, OWN_SD = 10.0, 4.0
CLASSES, BASE_STRENGTH, OWN_LOGIT_SD = 4, 2.0, 0.5
SETTINGS = EvaluationSpec(bootstrap_resamples=1000)
TASKS = {
    "regression": {
        "gate": {"name": "segment_mae_vs_baseline", "max_drop": 0.5, "min_support": 500},
        "drops": [("identical", 0.0), ("MAE +1.0, 1 segment", 1.0), ("MAE +0.7, 1 segment", 0.7)],
    },
    "multiclass": {
        "gate": {"name": "segment_macro_f1_vs_baseline", "max_drop": 0.03, "min_support": 500},
        "drops": [
            ("identical", 0.0),
            ("macro-F1 -0.07, 1 segment", 0.07),
            ("macro-F1 -0.05, 1 segment", 0.05),
        ],
    },
}


def mae_of(own_sd: float) -> float:
    return float(np.sqrt(SHARED_SD**2 + own_sd**2) * np.sqrt(2 / np.pi))


def own_sd_for(drop: float) -> float:
    """The candidate's own noise that raises the MAE by `drop` (closed form)."""
    sigma = (mae_of(OWN_SD) + drop) / np.sqrt(2 / np.pi)
    return float(np.sqrt(sigma**2 - SHARED_SD**2))


def logits(rng, y, strength):
    out = rng.normal(0, OWN_LOGIT_SD, (len(y), CLASSES))
    out[np.arange(len(y)), y] += strength
    return out


def true_macro_f1(strength: float, n: int = 2_000_000) -> float:
    rng = np.random.default_rng(12345)
    y = rng.integers(0, CLASSES, n)
    scores = logits(rng, y, strength) + rng.normal(0, 1, (n, CLASSES))
    return macro_f1(y, scores)


def strength_for(drop: float, base: float) -> float:
    low, high = 0.0, BASE_STRENGTH
    for _ in range(25):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if base - true_macro_f1(middle, 400_000) > drop else (low, middle)
        )
    return (low + high) / 2


def regression_candidate(rng, drop):
    n = SEGMENTS * ROWS
    segment = np.repeat([f"s{i}" for i in range(SEGMENTS)], ROWS)
    bad = int(rng.integers(SEGMENTS)) if drop else None
    shared = rng.normal(0, SHARED_SD, n)
    own_sd = np.full(n, OWN_SD)
    if bad is not None:
        own_sd[segment == f"s{bad}"] = own_sd_for(drop)
    y = rng.gamma(3.0, 40.0, n)
    baseline = y - (shared + rng.normal(0, OWN_SD, n))
    candidate = y - (shared + rng.normal(0, 1, n) * own_sd)
    truth = np.array([drop if i == bad else 0.0 for i in range(SEGMENTS)])
    data = RegressionSet(
        "holdout", np.arange(n).astype(str), y, candidate, baseline, {"segment": segment}, False
    )
    return data, bad, truth


def multiclass_candidate(rng, drop, degraded, truths):
    n = SEGMENTS * ROWS
    segment = np.repeat([f"s{i}" for i in range(SEGMENTS)], ROWS)
    bad = int(rng.integers(SEGMENTS)) if drop else None
    y = rng.integers(0, CLASSES, n)
    shared = rng.normal(0, 1, (n, CLASSES))
    baseline = logits(rng, y, BASE_STRENGTH) + shared
    strength = np.full(n, BASE_STRENGTH)
    if bad is not None:
        strength[segment == f"s{bad}"] = degraded[drop]
    candidate = logits(rng, y, 0.0) + shared
    candidate[np.arange(n), y] += strength
    soft = [np.exp(s - s.max(axis=1, keepdims=True)) for s in (candidate, baseline)]
    probs = [s / s.sum(axis=1, keepdims=True) for s in soft]
    truth = np.array([truths[drop] if i == bad else 0.0 for i in range(SEGMENTS)])
    data = MulticlassSet(
        "holdout",
        np.arange(n).astype(str),
        y,
        probs[0],
        probs[1],
        {"segment": segment},
        False,
        [f"c{i}" for i in range(CLASSES)],
    )
    return data, bad, truth


def segment_interval(task, data, mask):
    if task == "regression":
        c, b = (
            np.abs(data.y[mask] - data.candidate[mask]),
            np.abs(data.y[mask] - data.baseline[mask]),
        )
        return paired_mean_delta(c, b, 0.95, "mae")
    c, b = np.argmax(data.candidate[mask], axis=1), np.argmax(data.baseline[mask], axis=1)
    return paired_macro_f1_delta(data.y[mask], c, b, CLASSES, 0.95, 1000, 0)


def run_task(task: str, reps: int, seed: int) -> list[tuple]:
    """Per scenario: the gate's fail and inconclusive rates, catch, coverage; targets."""
    setup = TASKS[task]
    gate = GateSpec.model_validate(setup["gate"])
    measures = _regression if task == "regression" else _multiclass
    degraded, truths = {}, {}
    if task == "multiclass":
        base = true_macro_f1(BASE_STRENGTH)
        for _, drop in setup["drops"][1:]:
            degraded[drop] = strength_for(drop, base)
            truths[drop] = true_macro_f1(degraded[drop]) - base  # negative: a drop
        print(
            f"  multiclass truth: base macro-F1 {base:.4f}; drops "
            + ", ".join(f"{d}: {truths[d]:+.4f}" for d in truths)
        )
    rows = []
    for index, (label, drop) in enumerate(setup["drops"]):
        verdicts, caught, cover = [], [], []
        for rep in range(reps):
            rng = np.random.default_rng([seed, index, rep, len(task)])
            if task == "regression":
                data, bad, truth = regression_candidate(rng, drop)
            else:
                data, bad, truth = multiclass_candidate(rng, drop, degraded, truths)
            result = judge_task_gate(gate, measures, data, SETTINGS, ["segment"], "invalid")
            failing = {r["value"] for r in result.rows if r.get("verdict") == "fail"}
            verdicts.append(result.verdict.value)
            caught.append(bad is not None and failing == {f"s{bad}"})
            for i in range(SEGMENTS):
                c = segment_interval(task, data, data.segments["segment"] == f"s{i}")
                cover.append(c.low <= truth[i] <= c.high)
        verdicts = np.array(verdicts)
        rows.append(
            (
                task,
                label,
                float(np.mean(verdicts == "fail")),
                float(np.mean(verdicts == "inconclusive")),
                float(np.mean(caught)) if drop else None,
                float(np.mean(cover)),
            )
        )
    return rows


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="candidates per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=(*TASKS, "all"), default="all")
    args, _ = parser.parse_known_args()
    start = time.perf_counter()
    tasks = list(TASKS) if args.task == "all" else [args.task]
    rows = [row for task in tasks for row in run_task(task, args.reps, args.seed)]
    head = ("task", "scenario", "fail", "inconclusive", "catch", "95% coverage")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for task, label, fail, inconclusive, catch, cover in rows:
        print(
            f"| {task} | {label} | {pct(fail)} | {pct(inconclusive)} | {pct(catch)} "
            f"| {pct(cover)} |"
        )
    print("\ntargets:")
    for task, label, fail, _, catch, cover in rows:
        checks = [("coverage 93-97%", cover, 0.93 <= cover <= 0.97)]
        if label == "identical":
            checks.append(("false blocks <= 2%", fail, fail <= 0.02))
        elif label == TASKS[task]["drops"][1][0]:
            checks.append(("caught >= 95%", catch, catch >= 0.95))
        for name, value, ok in checks:
            print(f"  {task}, {label}: {name}: {pct(value)} {'met' if ok else 'NOT met'}")
    print(f"\n{args.reps} candidates per scenario in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
