"""False blocks, catches and interval coverage of every gate family, by simulation with known truth.

For each family of `bench/power_families.py` (classification, segments, small segments, ranking,
LLM, serving), `--reps` simulated releases with the candidate exactly at the tolerated margin
and `--reps` with the stated regression, each judged by the gate code the assets run. Printed
per family: how often a candidate at the margin is blocked (`fail`; the worst case of a false
block, guaranteed at most (1 - confidence) / 2), how often it is `inconclusive`, how often the
stated regression is caught (`fail`), and how often the interval (every interval of the family)
held the truth, over both scenarios.

The gates run at `--confidence` 0.96 by default: the level whose false-block guarantee at the
margin, (1 - 0.96) / 2 = 2 %, is the target (at the gates' default 0.95 it is 2.5 %). The
baseline of every rate is that guarantee, and of coverage the nominal confidence.

    .venv/bin/python bench/gate_power.py [--reps 200] [--seed 0] [--jobs 2] [--markdown]
        [--docs docs/statistics.md]
    .venv/bin/python bench/gate_power.py --tasks   # regression and multi-class instead
"""

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from docs_block import write_block
from power_families import FAMILIES

from ml_release.gates.result import Verdict
from ml_release.stats.binomial import clopper_pearson

SCENARIOS = ("margin", "regression")
TARGETS = {"false_block": 0.02, "catch": 0.95, "small_catch": 0.90, "coverage": (0.93, 0.97)}


def run(task: tuple[int, str, int, int, float]) -> tuple[int, str, list[str], list[bool], float]:
    """One family and scenario: verdicts and coverage of `reps` simulated releases."""
    index, scenario, reps, seed, confidence = task
    family = FAMILIES[index]
    started = time.perf_counter()
    verdicts, covered = [], []
    for rep in range(reps * family.reps_factor):
        rng = np.random.default_rng([seed, index, SCENARIOS.index(scenario), rep])
        outcome = family.simulate(rng, scenario, confidence)
        verdicts.append(outcome.verdict.value)
        covered.append(outcome.covered)
    return index, scenario, verdicts, covered, time.perf_counter() - started


def pct(x) -> str:
    return f"{100 * float(np.mean(x)):.1f} %"


def rate(flags) -> tuple[float, float, float]:
    """Share of True and its exact 95 % interval (the Monte Carlo error of the simulation)."""
    flags = np.asarray(flags, dtype=bool)
    low, high = clopper_pearson(int(flags.sum()), flags.size, 0.95)
    return float(flags.mean()), float(low), float(high)


def shown(value: tuple[float, float, float]) -> str:
    return f"{100 * value[0]:.1f} % [{100 * value[1]:.1f}, {100 * value[2]:.1f}]"


def rows(results: dict, confidence: float) -> list[dict]:
    """One row per family with its rates and whether each target is met.

    A rate meets its target when the simulation is consistent with it: the target lies inside
    or beyond the rate's exact 95 % Monte Carlo interval on the right side.
    """
    out = []
    low_cover, high_cover = TARGETS["coverage"]
    for index, family in enumerate(FAMILIES):
        margin, regression = results[(index, "margin")], results[(index, "regression")]
        false_block = rate(np.array(margin[0]) == Verdict.FAIL.value)
        caught = rate(np.array(regression[0]) == Verdict.FAIL.value)
        coverage = rate(margin[1] + regression[1])
        catch_target = TARGETS["small_catch" if "small" in family.name else "catch"]
        bonferroni = "Bonferroni" in family.correction
        out.append(
            {
                "family": family,
                "releases": len(margin[0]),
                "false_block": false_block,
                "inconclusive": np.mean(np.array(margin[0]) == Verdict.INCONCLUSIVE.value),
                "caught": caught,
                "coverage": coverage,
                "met_false": false_block[1] <= TARGETS["false_block"],
                "met_catch": caught[2] >= catch_target,
                # a Bonferroni family holds together with probability >= the confidence
                "met_cover": coverage[2] >= confidence if bonferroni
                else coverage[1] <= high_cover and coverage[2] >= low_cover,
                "seconds": margin[2] + regression[2],
            }
        )  # fmt: skip
    return out


def markdown(table: list[dict], reps: int, confidence: float) -> str:
    """The docs table: one row per gate family."""
    guarantee = (1 - confidence) / 2
    head = (
        "| task | gate family | statistic | correction | at the margin | releases "
        "| blocked (fail) | inconclusive | stated regression | caught "
        f"| coverage (nominal {confidence:.0%}) | targets met |"
    )
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    for r in table:
        f = r["family"]
        misses = [n for n, ok in (("false blocks", r["met_false"]), ("catch", r["met_catch"]),
                                  ("coverage", r["met_cover"])) if not ok]  # fmt: skip
        met = "NO: " + ", ".join(misses) if misses else "yes"
        if f.name.endswith("warn"):
            met = "reference: the previous behaviour"
        lines.append(
            f"| {f.task} | `{f.name}` | {f.statistic} | {f.correction} | {f.described(f.margin)} "
            f"| {r['releases']} | {shown(r['false_block'])} | {pct(r['inconclusive'])} "
            f"| {f.described(f.regression)} | {shown(r['caught'])} | {shown(r['coverage'])} "
            f"| {met} |"
        )
    lines += [
        "",
        f"Simulated releases per family and scenario as listed; gates at confidence "
        f"{confidence:g}, so a candidate exactly at the margin is blocked with probability at "
        f"most {guarantee:.1%}. Brackets: exact 95 % Monte Carlo intervals. Targets: blocked "
        "<= 2 %, caught >= 95 % (small segments pooled: >= 90 %), coverage 93-97 % (a "
        "Bonferroni family: all its intervals together >= the confidence); a target is met "
        "when the simulation is consistent with it (the target lies within the bracket or on "
        "its right side).",
    ]
    return "\n".join(lines)


def main() -> None:
    if "--tasks" in sys.argv:  # the regression and multi-class gates: bench/gate_power_tasks.py
        from gate_power_tasks import main as tasks_main

        return tasks_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="releases per family and scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confidence", type=float, default=0.96)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--markdown", action="store_true", help="print the docs table only")
    parser.add_argument(
        "--docs", type=Path, help="also write the table into this file's gate_power block"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    tasks = [
        (i, s, args.reps, args.seed, args.confidence)
        for i in range(len(FAMILIES))
        for s in SCENARIOS
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = {(i, s): (v, c, t) for i, s, v, c, t in pool.map(run, tasks)}
    table = rows(results, args.confidence)
    text = markdown(table, args.reps, args.confidence)
    print(text)
    if args.docs:
        write_block(args.docs, "gate_power", text)
    if not args.markdown:
        print("\nseconds per family (both scenarios, one process):")
        for r in table:
            print(f"  {r['family'].name}: {r['seconds']:.1f} s")
        print(f"\n{len(tasks) * args.reps} releases in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
