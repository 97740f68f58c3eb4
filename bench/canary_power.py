"""False aborts and catches of the sequential canary tests, by simulation with known truth.

Every simulated canary moves traffic to the candidate in steps of 5 %, 25 %, 50 % and 100 % of
2,000 requests per step interval (candidate / production requests per step: 100 / 1,900,
500 / 1,500, 1,000 / 1,000, 2,000 / 0). After each step (or each of `--looks-per-step`
analysis intervals inside it) both gates compare the arms on all requests so far, and the
canary is aborted at the first look where either gate fails:

- error rate: `error_rate_sequence` (beta-binomial mixtures), tolerated rise 0.25 points;
- latency: `mean_sequence` on log-latency, tolerated slowdown 5 % (margin log 1.05).

The same looks are also judged by the naive rule: a fixed-sample 95 % interval (Wald for the
error rates, Welch z for log-latency) at every look, abort when it lies above the margin.

Groups: healthy (candidate = production: error rate 0.5 %, latency lognormal with median
80 ms and log-sd 0.5), regressions (half error rate 0.5 % -> 2 %, half latency +15 %, i.e.
median 92 ms), and candidates exactly at the margin (0.75 % errors, or +5 % latency): still
acceptable, the worst case for a false abort. Each canary has its own seed
`numpy.random.default_rng([seed, group, canary])`.

    .venv/bin/python bench/canary_power.py [--canaries 200] [--seed 0] [--looks-per-step 1]
"""

import argparse
import math
import time

import numpy as np

from ml_release.stats.sequential import (
    error_rate_bounds,
    error_rate_sequence,
    mean_bounds,
    mean_sequence,
)

SHARES = (0.05, 0.25, 0.50, 1.00)
REQUESTS_PER_STEP = 2000
ERROR_RATE, ERROR_MARGIN, ERROR_REGRESSED = 0.005, 0.0025, 0.02  # margin: --error-margin
LOG_MEDIAN, LOG_SD = math.log(80.0), 0.5
LATENCY_MARGIN, LATENCY_REGRESSED = math.log(1.05), 1.15
ALPHA = 0.05
Z = 1.959963984540054  # two-sided 95 % normal quantile, for the naive rule


def groups(error_margin: float) -> list[tuple[str, str, float, float]]:
    """(label, gate it tests, candidate error rate, candidate latency factor) per group."""
    return [
        ("healthy", "none", ERROR_RATE, 1.0),
        ("regression: errors 0.5% -> 2%", "errors", ERROR_REGRESSED, 1.0),
        ("regression: latency +15%", "latency", ERROR_RATE, LATENCY_REGRESSED),
        (f"at the margin: errors {100 * (ERROR_RATE + error_margin):.2f}%", "errors",
         ERROR_RATE + error_margin, 1.0),
        ("at the margin: latency +5%", "latency", ERROR_RATE, math.exp(LATENCY_MARGIN)),
    ]  # fmt: skip


def plan(looks_per_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Requests per analysis interval for each arm: (candidate, production), one per look."""
    per_look = REQUESTS_PER_STEP // looks_per_step
    cand = np.repeat([round(s * per_look) for s in SHARES], looks_per_step)
    return cand, per_look - cand


def tuned_n(looks_per_step: int) -> float:
    """Expected requests per arm at the final look (the same for every canary, set in advance)."""
    cand, prod = plan(looks_per_step)
    return (cand.sum() + prod.sum()) / 2


def simulate(rng, cand_n, prod_n, error_c: float, latency_factor: float) -> dict:
    """Cumulative counts and log-latency moments of one canary at every look."""
    errors_c = np.cumsum(rng.binomial(cand_n, error_c))
    errors_p = np.cumsum(rng.binomial(prod_n, ERROR_RATE))
    shift = math.log(latency_factor)
    x_c = rng.normal(LOG_MEDIAN + shift, LOG_SD, cand_n.sum())
    x_p = rng.normal(LOG_MEDIAN, LOG_SD, prod_n.sum())
    return {"errors_c": errors_c, "errors_p": errors_p, "x_c": x_c, "x_p": x_p}


def moments(x: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample variance of x[:end] for every end (cumulative looks)."""
    s1 = np.concatenate([[0.0], np.cumsum(x)])[ends]
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])[ends]
    n = ends.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean**2) / (n - 1)
    return mean, var


def judge(sims: list[dict], cand_n, prod_n, tuned: float, error_margin: float) -> dict:
    """Fail flags per canary and look, for both gates and both rules (vectorized)."""
    n_c, n_p = np.cumsum(cand_n), np.cumsum(prod_n)
    errors_c = np.array([s["errors_c"] for s in sims])
    errors_p = np.array([s["errors_p"] for s in sims])
    low, _ = error_rate_bounds(errors_c, n_c, errors_p, n_p, ALPHA, tuned_n=tuned)
    seq_err = low > error_margin
    rate_c, rate_p = errors_c / n_c, errors_p / n_p
    se = np.sqrt(rate_c * (1 - rate_c) / n_c + rate_p * (1 - rate_p) / n_p)
    naive_err = rate_c - rate_p - Z * se > error_margin
    mc, vc = zip(*(moments(s["x_c"], n_c) for s in sims), strict=True)
    mp, vp = zip(*(moments(s["x_p"], n_p) for s in sims), strict=True)
    mc, vc, mp, vp = (np.array(v) for v in (mc, vc, mp, vp))
    low, _ = mean_bounds(n_c, mc, vc, n_p, mp, vp, ALPHA, tuned_n=tuned)
    seq_lat = low > LATENCY_MARGIN
    naive_lat = mc - mp - Z * np.sqrt(vc / n_c + vp / n_p) > LATENCY_MARGIN
    return {"seq_err": seq_err, "seq_lat": seq_lat, "naive_err": naive_err, "naive_lat": naive_lat}


def cross_check(
    sims: list[dict], flags: dict, cand_n, prod_n, tuned: float, error_margin: float, rng
) -> int:
    """Re-judge random looks with the per-look functions the controller calls; count them."""
    n_c, n_p = np.cumsum(cand_n), np.cumsum(prod_n)
    looks = len(n_c)
    checked = 0
    for i in rng.choice(len(sims), size=min(10, len(sims)), replace=False):
        s, look = sims[i], int(rng.integers(looks))
        final = look == looks - 1
        r = error_rate_sequence(
            int(s["errors_c"][look]), int(n_c[look]), int(s["errors_p"][look]), int(n_p[look]),
            error_margin, ALPHA, final, tuned_n=tuned,
        )  # fmt: skip
        assert r.abort == bool(flags["seq_err"][i, look]), (r, i, look)
        m = mean_sequence(
            s["x_c"][: n_c[look]], s["x_p"][: n_p[look]], LATENCY_MARGIN, ALPHA, final,
            tuned_n=tuned,
        )  # fmt: skip
        assert m.abort == bool(flags["seq_lat"][i, look]), (m, i, look)
        checked += 2
    return checked


def first_abort(fails: np.ndarray) -> np.ndarray:
    """Index of the first failing look per canary; -1 when it never failed."""
    return np.where(fails.any(axis=1), fails.argmax(axis=1), -1)


def pct(x) -> str:
    return f"{100 * float(np.mean(x)):.1f}%"


def run(canaries: int, seed: int, looks_per_step: int, error_margin: float) -> dict:
    cand_n, prod_n = plan(looks_per_step)
    tuned = tuned_n(looks_per_step)
    rng_check = np.random.default_rng([seed, 99])
    out, checked = {}, 0
    for g, (label, kind, error_c, factor) in enumerate(groups(error_margin)):
        # half of the regressions are of each kind; the at-the-margin groups get full size
        count = canaries // 2 if label.startswith("regression") else canaries
        sims = [
            simulate(np.random.default_rng([seed, g, i]), cand_n, prod_n, error_c, factor)
            for i in range(count)
        ]
        flags = judge(sims, cand_n, prod_n, tuned, error_margin)
        checked += cross_check(sims, flags, cand_n, prod_n, tuned, error_margin, rng_check)
        out[label] = (kind, flags)
    return {"groups": out, "checked": checked, "looks": len(cand_n), "tuned": tuned}


def report(result: dict, canaries: int) -> dict:
    looks, rows, totals = result["looks"], [], {}
    step_of = np.repeat(np.arange(len(SHARES)), looks // len(SHARES))
    for label, (kind, flags) in result["groups"].items():
        for rule in ("seq", "naive"):
            err, lat = flags[f"{rule}_err"], flags[f"{rule}_lat"]
            # healthy canaries are aborted by either gate; the others by the gate they test
            fails = err | lat if kind == "none" else (err if kind == "errors" else lat)
            first = first_abort(fails)
            aborted = first >= 0
            steps = [int(np.sum(step_of[first[aborted]] == k)) for k in range(len(SHARES))]
            rows.append((label, rule, aborted, steps))
            totals[(kind, label.split(":")[0], rule)] = aborted
    name = {"seq": "sequential (anytime-valid)", "naive": "naive fixed-sample, every look"}
    head = ("group", "rule", "aborted", "first abort at 5/25/50/100 % step")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for label, rule, aborted, steps in rows:
        at = " / ".join(str(s) for s in steps)
        print(
            f"| {label} | {name[rule]} | {pct(aborted)} ({aborted.sum()}/{aborted.size}) | {at} |"
        )
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=200, help="healthy (and regressed) count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--looks-per-step", type=int, default=1, help="analysis intervals per traffic step"
    )
    parser.add_argument(
        "--error-margin", type=float, default=ERROR_MARGIN, help="tolerated error-rate rise"
    )
    args = parser.parse_args()
    summary = {}
    start = time.perf_counter()
    for looks_per_step in sorted({args.looks_per_step, 5}):
        result = run(args.canaries, args.seed, looks_per_step, args.error_margin)
        print(
            f"\n{result['looks']} looks ({looks_per_step} per step), tuned_n={result['tuned']:g}, "
            f"alpha={ALPHA}, error margin {args.error_margin:g}, latency margin log(1.05); "
            f"{result['checked']} looks re-judged with error_rate_sequence / mean_sequence: "
            "all agree"
        )
        totals = report(result, args.canaries)
        summary[looks_per_step] = totals
    elapsed = time.perf_counter() - start
    main_totals = summary[args.looks_per_step]
    print(f"\ntargets ({args.looks_per_step} look(s) per step):")
    for rule, label in (("seq", "sequential"), ("naive", "naive")):
        healthy = main_totals[("none", "healthy", rule)]
        caught = np.concatenate(
            [main_totals[(k, "regression", rule)] for k in ("errors", "latency")]
        )
        for name, value, ok in [
            (f"false aborts <= 2% ({label})", healthy, np.mean(healthy) <= 0.02),
            (f"catches >= 95% ({label})", caught, np.mean(caught) >= 0.95),
        ]:
            print(f"  {name}: {pct(value)} {'met' if ok else 'NOT met'}")
    print("\nacceptable candidates exactly at the margin, aborted (per gate; at most alpha = 5%):")
    for looks_per_step, totals in summary.items():
        for kind in ("errors", "latency"):
            seq, naive = (totals[(kind, "at the margin", rule)] for rule in ("seq", "naive"))
            print(
                f"  {4 * looks_per_step} looks, {kind}: sequential {pct(seq)}, naive {pct(naive)}"
            )
    print(f"\n{elapsed:.1f} s")


if __name__ == "__main__":
    main()
