"""Power and false-block rate of `segment_roc_auc_vs_baseline`, by simulation with known truth.

Every simulated candidate goes through the gate code the assets use (`ml_release.evaluation.run.
judge` on an `EvalSet`): 8 segments of 5,000 rows (1,000 positives each), gate with
`max_drop: 0.01`, `min_support: 500`, `confidence: 0.95`, Bonferroni over the 8 segments.

Data (binormal, per row): baseline latent = D*y + s + e_b, candidate latent = D_c*y + s + e_c,
with s ~ N(0, 1) shared by both models and e_b, e_c ~ N(0, NOISE_SD^2) independent. Within a class
each latent is N(mean, 1 + NOISE_SD^2), so the true AUC is Phi(d / sqrt(2 (1 + NOISE_SD^2))): D
gives 0.78 and D_c gives 0.78 - drop in the one degraded segment (exactly, by construction).
Scores are the logistic of the latents (monotone: AUCs unchanged). The point-estimate rule
(block when an observed segment delta < -max_drop) is scored on the same simulated data.

    .venv/bin/python bench/gate_power.py [--reps 200] [--seed 0]
    .venv/bin/python bench/gate_power.py --tasks   # regression and multi-class instead
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from scipy.special import expit
from scipy.stats import norm

from ml_release.evaluation.data import EvalSet
from ml_release.evaluation.run import judge
from ml_release.spec import parse_spec
from ml_release.stats import delong_auc_delta

PROJECT = Path(__file__).resolve().parents[1]
SEGMENTS, ROWS, POSITIVES = 8, 5000, 1000
BASE_AUC, NOISE_SD, MAX_DROP = 0.78, 0.42, 0.01
SIGMA = np.sqrt(2 * (1 + NOISE_SD**2))  # sd of (positive latent - negative latent)
GATE = {
    "name": "segment_roc_auc_vs_baseline",
    "must_pass": True,
    "max_drop": MAX_DROP,
    "min_support": 500,
    "confidence": 0.95,
}
SCENARIOS = [("identical", 0.0), ("0.04 drop, 1 segment", 0.04), ("0.02 drop, 1 segment", 0.02)]


def separation(auc: float) -> float:
    """Class mean difference d that gives this binormal AUC."""
    return SIGMA * norm.ppf(auc)


def gate_and_spec():
    data = yaml.safe_load((PROJECT / "release.yaml").read_text())
    data["gates"] = [GATE]
    data["data"]["segments"] = ["segment"]
    spec = parse_spec(data, PROJECT / "release.yaml")
    return spec.gates[0], spec


def simulate(rng, drop: float):
    """Labels, both models' scores, segment per row, degraded segment, true delta per segment."""
    y = np.zeros((SEGMENTS, ROWS), dtype=int)
    y[:, :POSITIVES] = 1
    y = y.ravel()
    segment = np.repeat([f"s{i}" for i in range(SEGMENTS)], ROWS)
    bad = int(rng.integers(SEGMENTS)) if drop else None
    d_cand = np.full(SEGMENTS, separation(BASE_AUC))
    truth = np.zeros(SEGMENTS)
    if bad is not None:
        d_cand[bad], truth[bad] = separation(BASE_AUC - drop), -drop
    n = y.size
    shared = rng.normal(0, 1, n)
    base = separation(BASE_AUC) * y + shared + rng.normal(0, NOISE_SD, n)
    cand = np.repeat(d_cand, ROWS) * y + shared + rng.normal(0, NOISE_SD, n)
    return y, expit(cand - 1.0), expit(base - 1.0), segment, bad, truth


def run_scenario(drop: float, reps: int, seed: int, index: int, gate, spec) -> dict:
    row_ids = np.arange(SEGMENTS * ROWS).astype(str)
    names = [f"s{i}" for i in range(SEGMENTS)]
    keys = "verdict caught pfail pcaught flagged pflagged cover bad_cover family seg_inc corr half"
    out = {k: [] for k in keys.split()}
    for rep in range(reps):
        rng = np.random.default_rng([seed, index, rep])
        y, cand, base, segment, bad, truth = simulate(rng, drop)
        sets = {"holdout": EvalSet("holdout", row_ids, y, cand, base, {"segment": segment}, False)}
        result = judge(gate, sets, spec)
        rows = {r["value"]: r for r in result.rows}
        want = {f"s{bad}"} if bad is not None else set()
        gate_fails = {v for v, r in rows.items() if r["verdict"] == "fail"}
        point_fails = {v for v, r in rows.items() if r["delta"] < -MAX_DROP}
        out["verdict"].append(result.verdict.value)
        out["caught"].append(bool(want) and gate_fails == want)
        out["pfail"].append(bool(point_fails))
        out["pcaught"].append(bool(want) and point_fails == want)
        out["flagged"].append(bool(want) and want <= gate_fails)  # others may fail too
        out["pflagged"].append(bool(want) and want <= point_fails)
        out["seg_inc"].append(np.mean([r["verdict"] == "inconclusive" for r in rows.values()]))
        out["family"].append(
            all(rows[v]["low"] <= t <= rows[v]["high"] for v, t in zip(names, truth, strict=True))
        )
        out["half"].append(np.mean([(r["high"] - r["low"]) / 2 for r in rows.values()]))
        out["corr"].append(np.corrcoef(cand, base)[0, 1])
        for i, name in enumerate(names):
            m = segment == name
            c = delong_auc_delta(y[m], cand[m], base[m], confidence=0.95)
            out["cover"].append(c.low <= truth[i] <= c.high)
            if i == bad:
                out["bad_cover"].append(c.low <= truth[i] <= c.high)
    return {k: np.asarray(v) for k, v in out.items()}


def truth_check(seed: int, n: int = 1_000_000) -> tuple[float, float]:
    """Monte Carlo AUCs of the baseline and of a 0.04-drop candidate on n rows, vs analytic."""
    rng = np.random.default_rng([seed, 99])
    y = (np.arange(n) < n // 5).astype(int)
    shared = rng.normal(0, 1, n)
    base = separation(BASE_AUC) * y + shared + rng.normal(0, NOISE_SD, n)
    cand = separation(BASE_AUC - 0.04) * y + shared + rng.normal(0, NOISE_SD, n)
    c = delong_auc_delta(y, cand, base, confidence=0.95)
    return c.baseline, c.delta


def pct(x) -> str:
    return f"{100 * float(np.mean(x)):.1f}%"


def main() -> None:
    if "--tasks" in sys.argv:  # the regression and multi-class gates: bench/gate_power_tasks.py
        from gate_power_tasks import main as tasks_main

        return tasks_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="candidates per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gate, spec = gate_and_spec()
    start = time.perf_counter()
    auc_b, delta = truth_check(args.seed)
    print(
        f"truth: analytic baseline AUC {BASE_AUC}, Monte Carlo (10^6 rows) {auc_b:.4f}; "
        f"analytic 0.04-drop delta -0.0400, Monte Carlo {delta:+.4f}"
    )
    lines, res = [], {}
    for index, (label, drop) in enumerate(SCENARIOS):
        r = res[label] = run_scenario(drop, args.reps, args.seed, index, gate, spec)
        cov = pct(r["cover"]) if drop != 0.02 else "-"
        catch, pcatch = (pct(r["caught"]), pct(r["pcaught"])) if drop else ("-", "-")
        lines.append(
            (
                label,
                "interval gate",
                pct(r["verdict"] == "fail"),
                pct(r["verdict"] == "inconclusive"),
                catch,
                cov,
            )
        )
        lines.append((label, "point-estimate rule", pct(r["pfail"]), "0.0%", pcatch, "-"))
        print(
            f"  {label}: {args.reps} candidates, score correlation {r['corr'].mean():.3f}, "
            f"segments inconclusive {pct(r['seg_inc'])}, Bonferroni half-width "
            f"{r['half'].mean():.4f}, all 8 gate intervals hold {pct(r['family'])}"
        )
        if drop:
            print(
                f"    degraded segment flagged (other segments may fail too): gate "
                f"{pct(r['flagged'])}, point rule {pct(r['pflagged'])}; its 95% interval "
                f"holds the true delta {pct(r['bad_cover'])}"
            )
    elapsed = time.perf_counter() - start
    head = ("scenario", "rule", "fail", "inconclusive", "catch", "95% coverage")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for line in lines:
        print("| " + " | ".join(line) + " |")
    ident, big = res["identical"], res["0.04 drop, 1 segment"]
    print("\ntargets:")
    for name, value, ok in [
        ("false blocks <= 2% (interval gate)", ident["verdict"] == "fail", lambda v: v <= 0.02),
        ("false blocks <= 2% (point rule)", ident["pfail"], lambda v: v <= 0.02),
        ("0.04 drop caught >= 95% (interval gate)", big["caught"], lambda v: v >= 0.95),
        ("0.04 drop caught >= 95% (point rule)", big["pcaught"], lambda v: v >= 0.95),
        ("coverage 93-97%, identical", ident["cover"], lambda v: 0.93 <= v <= 0.97),
        ("coverage 93-97%, 0.04 drop", big["cover"], lambda v: 0.93 <= v <= 0.97),
    ]:
        print(f"  {name}: {pct(value)} {'met' if ok(np.mean(value)) else 'NOT met'}")
    print(f"\n{3 * args.reps} candidates in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
