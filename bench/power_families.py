"""The gate families `bench/gate_power.py` simulates: data with known truth, judged by gate code.

Each family simulates one release at a time and judges it with the function the assets call
(`ml_release.evaluation.run.judge`, `ml_release.evaluation.ranking`, the LLM and serving
judges), in two scenarios: the candidate exactly at the tolerated margin (an acceptable
candidate, the worst case for a false block) and the stated regression (must be caught).
Truths are analytic where a formula exists (binormal AUC and recall, binomial rates, p99
ratios, mean differences) and otherwise from a Monte Carlo run of 2,000,000 rows (Brier, PR
AUC) or 60,000 queries (NDCG@10), computed once per run.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.special import expit
from scipy.stats import norm
from sklearn.metrics import average_precision_score

from ml_release.evaluation import ranking
from ml_release.evaluation.data import EvalSet
from ml_release.evaluation.ranking_data import RankingSet
from ml_release.evaluation.run import judge
from ml_release.gates.catalog import CATALOG
from ml_release.gates.result import GateResult, Verdict
from ml_release.llm.gates import JUDGES as LLM_JUDGES
from ml_release.llm.report import LLMReport
from ml_release.metrics import ndcg_by_query
from ml_release.serving.gates import latency_vs_baseline
from ml_release.serving.measure import ServerMeasurement
from ml_release.serving.run import ServingReport
from ml_release.spec import GateSpec, parse_spec

PROJECT = Path(__file__).resolve().parents[1]
NOISE, PREVALENCE, BASE_AUC = 0.42, 0.2, 0.78
SIGMA = np.sqrt(2 * (1 + NOISE**2))  # sd of (positive latent - negative latent)


@dataclass
class Outcome:
    """One simulated release: the verdict and whether every interval held the truth."""

    verdict: Verdict
    covered: bool


@dataclass(frozen=True)
class Family:
    """A gate family: how it is judged, and what its two scenarios are."""

    name: str
    task: str
    statistic: str
    correction: str
    margin: str
    regression: str
    simulate: Any  # (rng, scenario, confidence) -> Outcome
    reps_factor: int = 1  # cheap families simulate this many times --reps releases
    truths: Any = None  # () -> text: the Monte Carlo truths behind the margin and regression

    def described(self, text: str) -> str:
        """`text` with the family's Monte Carlo truths filled in."""
        return text.format(**self.truths()) if self.truths else text


def separation(auc: float) -> float:
    """Class mean difference of the binormal latents that gives this AUC."""
    return SIGMA * norm.ppf(auc)


def binormal(rng, n: int, auc_base: float, auc_cand: np.ndarray | float):
    """Labels and both models' scores; the models share most of their noise (paired)."""
    y = (np.arange(n) < round(n * PREVALENCE)).astype(int)
    shared = rng.normal(0, 1, n)
    base = separation(auc_base) * y + shared + rng.normal(0, NOISE, n)
    cand = separation(auc_cand) * y + shared + rng.normal(0, NOISE, n)
    return y, expit(cand - 1.0), expit(base - 1.0)


@functools.cache
def _spec_and_gate(entry: tuple, segments: tuple = ()):
    data = yaml.safe_load((PROJECT / "release.yaml").read_text())
    data["gates"] = [dict(entry)]
    data["data"]["segments"] = list(segments) or data["data"]["segments"]
    spec = parse_spec(data, PROJECT / "release.yaml")
    return spec.gates[0], spec


def _classify(entry: dict, y, cand, base, segments: dict | None = None) -> GateResult:
    segs = segments or {}
    gate, spec = _spec_and_gate(tuple(entry.items()), tuple(segs))
    ids = np.arange(len(y)).astype(str)
    return judge(gate, {"holdout": EvalSet("holdout", ids, y, cand, base, segs, False)}, spec)


def _holds(result: GateResult, truth: float) -> bool:
    low, high = result.interval
    return bool(low <= truth <= high)


# -- classification, global -------------------------------------------------------------------
def roc_auc(rng, scenario: str, confidence: float) -> Outcome:
    """n = 5,000 rows, production AUC 0.78; margin 0.01; regression: AUC 0.74."""
    drop = 0.01 if scenario == "margin" else 0.04
    y, cand, base = binormal(rng, 5000, BASE_AUC, BASE_AUC - drop)
    entry = {"name": "roc_auc_vs_baseline", "max_drop": 0.01, "confidence": confidence}
    result = _classify(entry, y, cand, base)
    return Outcome(result.verdict, _holds(result, -drop))


def _recall_at_half(auc: float) -> float:
    return float(1 - norm.cdf((1.0 - separation(auc)) / np.sqrt(1 + NOISE**2)))


def _auc_for_recall(recall: float) -> float:
    d = 1.0 - np.sqrt(1 + NOISE**2) * norm.ppf(1 - recall)
    return float(norm.cdf(d / SIGMA))


def recall(rng, scenario: str, confidence: float) -> Outcome:
    """Recall at 0.5, 8-cell bootstrap; n = 5,000; margin 0.02; regression: recall -0.08."""
    drop = 0.02 if scenario == "margin" else 0.08
    base_recall = _recall_at_half(BASE_AUC)
    y, cand, base = binormal(rng, 5000, BASE_AUC, _auc_for_recall(base_recall - drop))
    entry = {"name": "recall_vs_baseline", "max_drop": 0.02, "confidence": confidence}
    result = _classify(entry, y, cand, base)
    return Outcome(result.verdict, _holds(result, -drop))


@functools.cache
def monte_carlo_delta(metric: str, auc_cand: float) -> float:
    """Candidate - production of `metric` on 2,000,000 rows (the truth for these families)."""
    y, cand, base = binormal(np.random.default_rng(12345), 2_000_000, BASE_AUC, auc_cand)
    if metric == "brier":
        return float(np.mean((cand - y) ** 2) - np.mean((base - y) ** 2))
    return float(average_precision_score(y, cand) - average_precision_score(y, base))


BRIER_AUCS = {"margin": 0.77, "regression": 0.72}


def brier(rng, scenario: str, confidence: float) -> Outcome:
    """Brier score, paired t; n = 5,000; margin = the true rise of an AUC-0.77 candidate."""
    margin = monte_carlo_delta("brier", BRIER_AUCS["margin"])
    truth = monte_carlo_delta("brier", BRIER_AUCS[scenario])
    y, cand, base = binormal(rng, 5000, BASE_AUC, BRIER_AUCS[scenario])
    entry = {"name": "brier_vs_baseline", "max_drop": margin, "confidence": confidence}
    result = _classify(entry, y, cand, base)
    return Outcome(result.verdict, _holds(result, truth))


PR_AUCS = {"margin": 0.77, "regression": 0.71}


def pr_auc(rng, scenario: str, confidence: float) -> Outcome:
    """PR AUC, row bootstrap; n = 3,000; margin = the true drop of an AUC-0.77 candidate."""
    margin = -monte_carlo_delta("pr_auc", PR_AUCS["margin"])
    truth = monte_carlo_delta("pr_auc", PR_AUCS[scenario])
    y, cand, base = binormal(rng, 3000, BASE_AUC, PR_AUCS[scenario])
    entry = {"name": "pr_auc_vs_baseline", "max_drop": margin, "confidence": confidence}
    result = _classify(entry, y, cand, base)
    return Outcome(result.verdict, _holds(result, truth))


# -- classification, segments -------------------------------------------------------------------
def segments(rng, scenario: str, confidence: float) -> Outcome:
    """8 segments of 5,000 rows; margin: every segment -0.01; regression: one segment -0.04."""
    drops = np.full(8, 0.01) if scenario == "margin" else np.eye(8)[rng.integers(8)] * 0.04
    parts = [binormal(rng, 5000, BASE_AUC, BASE_AUC - d) for d in drops]
    y, cand, base = (np.concatenate(p) for p in zip(*parts, strict=True))
    names = np.repeat([f"s{i}" for i in range(8)], 5000)
    entry = {
        "name": "segment_roc_auc_vs_baseline",
        "max_drop": 0.01,
        "min_support": 500,
        "confidence": confidence,
    }
    result = _classify(entry, y, cand, base, {"segment": names})
    truth = {f"s{i}": -d for i, d in enumerate(drops)}
    held = all(r["low"] <= truth[r["value"]] <= r["high"] for r in result.rows if "low" in r)
    return Outcome(result.verdict, held)


def _small(policy: str):
    def simulate(rng, scenario: str, confidence: float) -> Outcome:
        """A large segment of 8,000 rows (unchanged) and 40 of 200 (below min_support 500)."""
        drop = 0.01 if scenario == "margin" else 0.05
        big = binormal(rng, 8000, BASE_AUC, BASE_AUC)
        small = [binormal(rng, 200, BASE_AUC, BASE_AUC - drop) for _ in range(40)]
        y, cand, base = (np.concatenate([big[i], *[s[i] for s in small]]) for i in range(3))
        names = np.array(["big"] * 8000 + [f"s{i:02d}" for i in range(40) for _ in range(200)])
        entry = {
            "name": "segment_roc_auc_vs_baseline",
            "max_drop": 0.01,
            "min_support": 500,
            "confidence": confidence,
            "small_segments": policy,
        }
        result = _classify(entry, y, cand, base, {"store": names})
        truth = {"big": 0.0}
        held = all(
            r["low"] <= truth.get(r["value"], -drop) <= r["high"] for r in result.rows if "low" in r
        )
        return Outcome(result.verdict, held)

    return simulate


# -- ranking -------------------------------------------------------------------------------------
QUERIES, DOCS, BASE_NOISE = 400, 20, 0.6
RANK_NOISE = {"margin": 0.66, "regression": 0.9}


def _queries(rng, n_queries: int, cand_noise: float) -> RankingSet:
    """Queries of 20 documents graded 0-3 from a latent; models rank by latent + noise."""
    n = n_queries * DOCS
    latent = rng.normal(0, 1, n)
    grade = np.digitize(latent + rng.normal(0, 0.3, n), [0.5, 1.2, 1.8]).astype(float)
    shared = rng.normal(0, BASE_NOISE * 0.8, n)
    own = np.sqrt(1 - 0.8**2) * BASE_NOISE
    base = latent + shared + rng.normal(0, own, n)
    extra = np.sqrt(max(cand_noise**2 - BASE_NOISE**2, 0.0))
    cand = latent + shared + rng.normal(0, own, n) + rng.normal(0, extra, n)
    ids = np.repeat([f"q{i:06d}" for i in range(n_queries)], DOCS)
    rows = np.array([f"r{i}" for i in range(n)])
    return RankingSet("holdout", rows, grade, cand, base, {}, False, ids)


@functools.cache
def ndcg_delta(cand_noise: float) -> float:
    """True NDCG@10 difference, candidate - production, from 60,000 queries."""
    data = _queries(np.random.default_rng(54321), 60_000, cand_noise)
    _, c = ndcg_by_query(data.y, data.candidate, data.query_ids, 10)
    _, b = ndcg_by_query(data.y, data.baseline, data.query_ids, 10)
    keep = np.isfinite(c)
    return float(np.mean(c[keep] - b[keep]))


def ndcg(rng, scenario: str, confidence: float) -> Outcome:
    """400 queries; margin = the true drop of a noisier ranker; regression: a much noisier one."""
    margin = -ndcg_delta(RANK_NOISE["margin"])
    truth = ndcg_delta(RANK_NOISE[scenario])
    data = _queries(rng, QUERIES, RANK_NOISE[scenario])
    gate = GateSpec.model_validate(
        {"name": "ndcg_at_k_vs_baseline", "k": 10, "max_drop": margin, "confidence": confidence}
    )
    result = ranking.vs_baseline(gate, "ndcg_at_k", data)
    return Outcome(result.verdict, _holds(result, truth))


# -- LLM -----------------------------------------------------------------------------------------
def _llm_gate(name: str, **params) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, target="llm_evaluation_report", params=CATALOG[name].params(**params)
    )


def structured(rng, scenario: str, confidence: float) -> Outcome:
    """300 structured answers; tolerated failure rate 5 %; regression: 12 % fail."""
    rate = 0.05 if scenario == "margin" else 0.12
    valid = rng.uniform(size=300) >= rate
    frame = pd.DataFrame({"question_id": [f"q{i}" for i in range(300)], "route": "r",
                          "structured": True, "json_valid": valid, "schema_valid": valid,
                          "structured_problem": "", "answer": "{}"})  # fmt: skip
    report = LLMReport(frame, None, "c", None, "m")
    gate = _llm_gate("llm_json_validity", max_failure_rate=0.05, confidence=confidence)
    result = LLM_JUDGES["llm_json_validity"](gate, report)
    return Outcome(result.verdict, _holds(result, rate))


def llm_quality(rng, scenario: str, confidence: float) -> Outcome:
    """300 questions in 3 routes; margin: every route -0.05; regression: one route -0.2."""
    routes = np.array(["a", "b", "c"])[np.arange(300) % 3]
    drops = {"a": 0.05, "b": 0.05, "c": 0.05} if scenario == "margin" else {"a": 0.2}
    drop = np.array([drops.get(r, 0.0) for r in routes])
    common = rng.normal(0.7, 0.08, 300)
    production = common + rng.normal(0, 0.04, 300)
    candidate = common + rng.normal(0, 0.04, 300) - drop
    text = {"answer": "a", "retrieved_ids": "p1", "unsupported": "", "structured_problem": "",
            "structured": False, "schema_valid": True}  # fmt: skip
    frames = [
        pd.DataFrame({"question_id": [f"q{i}" for i in range(300)], "route": routes,
                      "groundedness": score, **text})
        for score in (candidate, production)
    ]  # fmt: skip
    report = LLMReport(frames[0], frames[1], "c", "p", "m", "m")
    gate = _llm_gate("llm_groundedness_vs_baseline", max_drop=0.05, confidence=confidence)
    result = LLM_JUDGES["llm_groundedness_vs_baseline"](gate, report)
    truth = {"(all)": -float(drop.mean()), **{r: -drops.get(r, 0.0) for r in "abc"}}
    held = all(row["low"] <= truth[row["route"]] <= row["high"] for row in result.rows)
    return Outcome(result.verdict, held)


# -- serving ---------------------------------------------------------------------------------------
def p99(rng, scenario: str, confidence: float) -> Outcome:
    """1,000 interleaved requests on a busy machine; tolerated p99 rise 25 %; regression x2."""
    slowdown = 1.25 if scenario == "margin" else 2.0
    n = 1000
    load = np.zeros(n)
    shocks = rng.normal(0, 0.2, n)
    for k in range(1, n):
        load[k] = 0.9 * load[k - 1] + shocks[k]
    latencies = {
        "candidate": np.exp(np.log(12) + load + rng.normal(0, 0.3, n)) * slowdown,
        "production": np.exp(np.log(12) + load + rng.normal(0, 0.3, n)),
        "production_replica": np.exp(np.log(12) + load + rng.normal(0, 0.3, n)),
    }
    measurements = {}
    for role, ms in latencies.items():
        measurements[role] = m = ServerMeasurement(role, role, 1.0)
        m.latencies_ms, m.latency_steps = list(ms), list(range(n))
    gate = GateSpec.model_validate(
        {"name": "serving_latency_p99_vs_baseline", "max_increase": 0.25, "confidence": confidence}
    )
    result = latency_vs_baseline(gate, ServingReport(measurements, None, {}))
    return Outcome(result.verdict, _holds(result, slowdown - 1))


FAMILIES = [
    Family("roc_auc_vs_baseline", "classification", "DeLong interval of the AUC difference",
           "none (one comparison)", "AUC -0.01 (max_drop 0.01)", "AUC -0.04", roc_auc, 5),
    Family("brier_vs_baseline", "classification", "paired t interval of per-row differences",
           "none", "Brier +{margin:.4f}: an AUC-0.77 candidate (max_drop the same)",
           "Brier +{regression:.4f}: an AUC-0.72 candidate", brier, 5,
           lambda: {s: monte_carlo_delta("brier", a) for s, a in BRIER_AUCS.items()}),
    Family("recall_vs_baseline", "classification", "paired bootstrap, 8-cell multinomial",
           "none", "recall -0.02 (max_drop 0.02)", "recall -0.08", recall, 5),
    Family("pr_auc_vs_baseline", "classification", "paired row bootstrap, percentile interval",
           "none", "PR AUC {margin:+.4f}: an AUC-0.77 candidate (max_drop the same)",
           "PR AUC {regression:+.4f}: an AUC-0.71 candidate", pr_auc, 1,
           lambda: {s: monte_carlo_delta("pr_auc", a) for s, a in PR_AUCS.items()}),
    Family("segment_roc_auc_vs_baseline", "classification", "DeLong per segment",
           "Bonferroni over 8 segments", "every segment AUC -0.01", "one segment AUC -0.04",
           segments),
    Family("small segments, small_segments: pool", "classification",
           "DeLong on the pooled small segments", "Bonferroni (2 slices)",
           "40 segments of 200 rows, each AUC -0.01", "the same 40 segments, AUC -0.05",
           _small("pool")),
    Family("small segments, small_segments: warn", "classification",
           "(not judged: the previous behaviour)", "-", "as above", "as above", _small("warn")),
    Family("ndcg_at_k_vs_baseline", "ranking", "paired t over per-query NDCG@10", "none",
           "NDCG@10 {margin:+.4f}: a noisier ranker (max_drop the same)",
           "NDCG@10 {regression:+.4f}: a much noisier ranker", ndcg, 3,
           lambda: {s: ndcg_delta(v) for s, v in RANK_NOISE.items()}),
    Family("llm_json_validity", "llm", "Clopper-Pearson interval of the failure rate", "none",
           "5 % failing (max_failure_rate 0.05)", "12 % failing", structured, 5),
    Family("llm_groundedness_vs_baseline", "llm", "paired t per question", "Bonferroni over all "
           "+ 3 routes", "every route -0.05 (max_drop 0.05)", "one route -0.2", llm_quality, 5),
    Family("serving_latency_p99_vs_baseline", "serving", "moving-block bootstrap of the p99 "
           "ratio, interleaved requests", "none", "p99 x1.25 (max_increase 0.25)", "p99 x2",
           p99),
]  # fmt: skip
