"""False aborts, catches and coverage of the canary analysis, by simulation with known truth.

Every simulated canary goes through the analysis the controller runs (`ml_release.canary.
analysis.analyze`, all comparisons composed, arms compared within each step, alpha split over
the comparisons) after each step of 5, 25, 50 and 100 % of 2,000 requests (candidate /
production requests per step: 100 / 1,900, 500 / 1,500, 1,000 / 1,000, 2,000 / 0). A canary is
aborted at the first look where any comparison fails.

Per request, in each arm: an error with probability `rate` (0.5 % in production), else a
log-latency ~ N(log 50 ms, 0.5), a score ~ N(0.3, 0.2) clipped to [0, 1], and, for half the
answered requests, a log loss ~ Exponential(mean 0.4). Groups:

- healthy: the candidate is production;
- at every margin at once: errors +1 point, latency x1.25, score +0.05, loss +0.1 (still
  acceptable on every comparison: the worst case for a family-wise false abort);
- drifting traffic: both arms alike, but traffic changes step by step (time-ordered log):
  errors 0.5 -> 2.5 -> 4.5 -> 6.5 %, latency x1.35 per step, loss +0.05 per step;
- regressions (the stated ones): errors 0.5 % -> 5 %, latency +40 %, score +0.09, loss +0.2.

The reference rule ("pooled") is the previous analysis: each comparison on everything each
arm served so far, at the full alpha each (`ml_release.stats.sequential`).

    .venv/bin/python bench/canary_power.py [--canaries 400] [--seed 0] [--markdown]
        [--docs docs/statistics.md]
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
from docs_block import write_block

from ml_release.canary.analysis import ArmRequests, StepRequests, analyze
from ml_release.gates.result import Verdict
from ml_release.spec import CanarySpec
from ml_release.stats.sequential import error_rate_sequence, mean_sequence

# The spec's default margins, and a quality comparison (off by default: labels seldom arrive
# during a canary) with a margin 2,000 requests per step can confirm.
SETTINGS = CanarySpec(enabled=True, requests_per_step=2000, quality_margin=0.1)
BASE_ERROR, LOG_MEDIAN, LOG_SD, SCORE, SCORE_SD, LOSS = 0.005, math.log(50.0), 0.5, 0.3, 0.2, 0.4
AT_MARGIN = {
    "error": SETTINGS.error_margin,
    "latency": math.log1p(SETTINGS.latency_margin),
    "score": SETTINGS.score_shift_margin,
    "loss": SETTINGS.quality_margin,
}
GROUPS = [  # label, comparison a regression targets, candidate's differences, drift per step
    ("healthy", None, {}, 0.0),
    ("at every margin at once", None, AT_MARGIN, 0.0),
    ("drifting traffic (arms alike)", None, {}, 1.0),
    ("errors 0.5 % -> 5 %", "error_rate", {"error": 0.045}, 0.0),
    ("latency +40 %", "latency", {"latency": math.log(1.4)}, 0.0),
    ("score shift +0.09", "score_shift", {"score": 0.09}, 0.0),
    ("log loss +0.2", "quality", {"loss": 0.2}, 0.0),
]


def simulate(rng, shift: dict, drift: float) -> list[StepRequests]:
    """One canary's requests, step by step. `drift`: every arm's level rises by step."""
    steps = []
    for k, share in enumerate(SETTINGS.steps):
        n_c = round(SETTINGS.requests_per_step * share / 100)
        arms = {}
        for arm, n, d in (
            ("candidate", n_c, shift),
            ("production", SETTINGS.requests_per_step - n_c, {}),
        ):
            rate = BASE_ERROR * (1 + 4 * drift * k) + d.get("error", 0.0)
            errors = rng.uniform(size=n) < rate
            ok = int(n - errors.sum())
            arms[arm] = ArmRequests(
                errors,
                rng.normal(LOG_MEDIAN + 0.3 * drift * k + d.get("latency", 0.0), LOG_SD, ok),
                np.clip(rng.normal(SCORE + d.get("score", 0.0), SCORE_SD, ok), 0, 1),
                rng.exponential(LOSS, ok // 2) + 0.05 * drift * k + d.get("loss", 0.0),
            )
        steps.append(StepRequests(share, arms))
    return steps


def truth(shift: dict) -> dict[str, float]:
    """The true within-step difference of each comparison (clipping of scores is negligible)."""
    return {
        "error_rate": shift.get("error", 0.0),
        "latency": shift.get("latency", 0.0),
        "score_shift": shift.get("score", 0.0),
        "quality": shift.get("loss", 0.0),
    }


def pooled_abort(steps: list[StepRequests], final: bool) -> bool:
    """The previous rule: each arm pooled over the canary, every comparison at the full alpha."""
    arm = {a: [s.arms[a] for s in steps] for a in ("candidate", "production")}
    cat = {a: {f: np.concatenate([getattr(r, f) for r in rs]) for f in
               ("errors", "log_latency", "scores", "losses")} for a, rs in arm.items()}  # fmt: skip
    c, p = cat["candidate"], cat["production"]
    kw = {"alpha": SETTINGS.alpha, "final": final, "tuned_n": 4000}
    results = [
        error_rate_sequence(int(c["errors"].sum()), c["errors"].size, int(p["errors"].sum()),
                            p["errors"].size, SETTINGS.error_margin, **kw),
        mean_sequence(c["log_latency"], p["log_latency"], AT_MARGIN["latency"], **kw),
        mean_sequence(c["scores"], p["scores"], SETTINGS.score_shift_margin, **kw),
        mean_sequence(-c["scores"], -p["scores"], SETTINGS.score_shift_margin, **kw),
        mean_sequence(c["losses"], p["losses"], SETTINGS.quality_margin, **kw),
    ]  # fmt: skip
    return any(r.abort for r in results)


def run_group(shift: dict, drift: float, canaries: int, seed: int, index: int) -> dict:
    """Per canary: aborted (new, pooled), the comparison that aborted, intervals that held."""
    out = {"aborted": [], "pooled": [], "first": [], "held": [], "passed": []}
    true = truth(shift)
    for i in range(canaries):
        rng = np.random.default_rng([seed, index, i])
        steps = simulate(rng, shift, drift)
        looks = []
        for k in range(len(steps)):
            looks.append(analyze(steps[: k + 1], SETTINGS, k == len(steps) - 1))
            if looks[-1].decision is Verdict.FAIL:
                break
        pooled = any(pooled_abort(steps[: k + 1], k == len(steps) - 1) for k in range(len(steps)))
        failed = [n for n, r in looks[-1].results.items() if r.decision is Verdict.FAIL]
        out["aborted"].append(looks[-1].decision is Verdict.FAIL)
        out["pooled"].append(pooled)
        out["first"].append(failed[0] if failed else "")
        out["passed"].append(looks[-1].decision is Verdict.PASS)
        out["held"].append(
            all(
                not math.isfinite(r.lower) or r.lower <= true[name] <= r.upper
                for look in looks
                for name, r in look.results.items()
            )
        )
    return {k: np.asarray(v) for k, v in out.items()}


def pct(x) -> str:
    return f"{100 * float(np.mean(x)):.1f} %"


def table(results: dict, canaries: int) -> list[str]:
    head = (
        "group | canaries | aborted (within steps) | aborted by | aborted (pooled reference) "
        "| promoted | every interval held at every look"
    )
    lines = [f"| {head} |", "|" + "---|" * (head.count("|") + 1)]
    for label, _target, _shift, _drift in GROUPS:
        r = results[label]
        names, counts = np.unique(r["first"][r["aborted"]], return_counts=True)
        by = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
        lines.append(
            f"| {label} | {canaries} | {pct(r['aborted'])} | {by or '-'} | {pct(r['pooled'])} "
            f"| {pct(r['passed'])} | {pct(r['held'])} |"
        )
    return lines


def targets(results: dict) -> list[tuple[str, float, bool]]:
    """(target, measured, met) for the issue's targets."""
    alpha = SETTINGS.alpha
    rows = [
        ("family-wise false aborts at every margin <= alpha (5 %)",
         results["at every margin at once"]["aborted"].mean(), None),
        ("false aborts of a healthy canary <= alpha", results["healthy"]["aborted"].mean(), None),
        ("false aborts under drifting traffic <= alpha",
         results["drifting traffic (arms alike)"]["aborted"].mean(), None),
    ]  # fmt: skip
    rows = [(name, value, value <= alpha) for name, value, _ in rows]
    for label, target, _shift, _drift in GROUPS:
        if target:
            caught = results[label]["aborted"].mean()
            rows.append((f"{label} caught >= 95 %", caught, caught >= 0.95))
    held = np.mean([results[g[0]]["held"].mean() for g in GROUPS if not g[3]])
    rows.append(("every interval held at every look >= 1 - alpha", held, held >= 1 - alpha))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=400, help="canaries per group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the docs table only")
    parser.add_argument(
        "--docs", type=Path, help="also write the table into this file's canary_power block"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {
        label: run_group(shift, drift, args.canaries, args.seed, i)
        for i, (label, _target, shift, drift) in enumerate(GROUPS)
    }
    elapsed = time.perf_counter() - started
    lines = table(results, args.canaries)
    checks = targets(results)
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {n} | {100 * v:.1f} % | {'yes' if ok else 'NO'} |" for n, v, ok in checks]
    if not args.markdown:
        print(
            f"canary analysis: steps {SETTINGS.steps} of {SETTINGS.requests_per_step} requests, "
            f"alpha {SETTINGS.alpha} split over 4 comparisons; margins: errors "
            f"+{SETTINGS.error_margin}, latency x{1 + SETTINGS.latency_margin}, score "
            f"+-{SETTINGS.score_shift_margin}, log loss +{SETTINGS.quality_margin}\n"
        )
    print("\n".join(lines))
    if args.docs:
        write_block(args.docs, "canary_power", "\n".join(lines))
    if not args.markdown:
        print(f"\n{len(GROUPS) * args.canaries} canaries in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
