"""Ranking gates: paired per-query comparisons, segments of queries, undefined cells, floors."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score

from ml_release.errors import DataInputError
from ml_release.evaluation import ranking, ranking_report
from ml_release.evaluation.ranking_data import RankingSet, check_query_segments
from ml_release.evaluation.ranking_report import ranking_metrics_table
from ml_release.gates.ranking import RANKING_DIRECTIONS
from ml_release.gates.result import Verdict
from ml_release.metrics import RANKING_METRICS
from ml_release.spec import GateSpec

MARKETS = ["us", "uk", "de", "fr", "jp"]


def _gate(name: str, **params) -> GateSpec:
    return GateSpec.model_validate({"name": name, **params})


def _queries(n_queries=400, seed=0, noise=0.6, broken_market=None, no_relevance_market=None):
    """Synthetic results: 20 rows per query, graded 0-3 from a latent utility.

    Both models score latent + independent noise (identical up to noise); with
    `broken_market`, the candidate ranks that market's queries at random.
    """
    rng = np.random.default_rng(seed)
    size = 20
    query = np.repeat([f"q{i:04d}" for i in range(n_queries)], size)
    market = np.repeat(rng.choice(MARKETS, n_queries), size)
    device = np.repeat(rng.choice(["desktop", "mobile"], n_queries), size)
    latent = rng.normal(0, 1, query.size)
    relevance = np.digitize(latent + rng.normal(0, 0.3, query.size), [0.5, 1.2, 1.8])
    if no_relevance_market is not None:
        relevance = np.where(market == no_relevance_market, 0, relevance)
    candidate = latent + rng.normal(0, noise, query.size)
    baseline = latent + rng.normal(0, noise, query.size)
    if broken_market is not None:
        broken = market == broken_market
        candidate = np.where(broken, rng.normal(0, 1, query.size), candidate)
    return RankingSet(
        name="holdout",
        row_ids=np.array([f"r{i:06d}" for i in range(query.size)]),
        query_ids=query,
        y=relevance.astype(float),
        candidate=candidate,
        baseline=baseline,
        segments={"market": market, "device": device},
        trivial_baseline=False,
    )


def _segment(data, **params):
    gate = _gate("segment_ndcg_at_k_vs_baseline", **{"k": 10, "max_drop": 0.03, **params})
    return ranking.segment_vs_baseline(gate, "ndcg_at_k", data, ["market", "device"])


def test_directions_match_the_metrics():
    assert {m: d.greater_is_better for m, d in RANKING_METRICS.items()} == RANKING_DIRECTIONS


def test_identical_up_to_noise_passes_then_a_real_segment_drop_fails():
    twin = _segment(_queries(seed=1, noise=0.2))
    assert twin.verdict is Verdict.PASS, twin.summary

    broken = _segment(_queries(seed=1, noise=0.2, broken_market="jp"))
    assert broken.verdict is Verdict.FAIL
    worst = broken.rows[0]
    assert (worst["column"], worst["value"], worst["verdict"]) == ("market", "jp", "fail")
    assert worst["high"] < -0.03  # the whole interval lies beyond the tolerated drop
    others = [r for r in broken.rows if r["column"] == "market" and r["value"] != "jp"]
    assert all(r["verdict"] == "pass" for r in others)
    assert "market=jp" in broken.summary


@pytest.mark.parametrize("seed", range(6))
def test_noise_twin_never_fails(seed):
    data = _queries(n_queries=150, seed=100 + seed, noise=1.0)
    for result in (
        _segment(data, max_drop=0.02),
        ranking.vs_baseline(_gate("ndcg_at_k_vs_baseline", max_drop=0.01), "ndcg_at_k", data),
        ranking.vs_baseline(_gate("recall_at_k_vs_baseline", max_drop=0.01), "recall_at_k", data),
    ):
        assert result.verdict is not Verdict.FAIL, result.summary


def test_interval_is_the_paired_t_over_per_query_values_from_scikit_learn():
    data = _queries(n_queries=60, seed=3)
    result = ranking.vs_baseline(
        _gate("ndcg_at_k_vs_baseline", k=5, max_drop=0.05, confidence=0.9, min_support=10),
        "ndcg_at_k",
        data,
    )
    diffs, cand = [], []
    for q in np.unique(data.query_ids):
        rows = data.query_ids == q
        truth = data.y[rows][None, :]
        if truth.sum() == 0:
            continue  # no relevant row: no NDCG (scikit-learn would count it as 0)
        c = ndcg_score(truth, data.candidate[rows][None, :], k=5)
        b = ndcg_score(truth, data.baseline[rows][None, :], k=5)
        diffs.append(c - b)
        cand.append(c)
    diffs = np.array(diffs)
    low, high = stats.t.interval(
        0.9, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs, ddof=1)
    )
    assert result.observed == pytest.approx(np.mean(cand))
    assert result.interval == pytest.approx((low, high))
    assert result.support["queries_with_relevant"] == len(diffs)
    assert result.rows[0]["method"] == "paired_t"


def test_queries_without_relevant_rows_are_excluded_and_counted():
    data = _queries(n_queries=200, seed=4, no_relevance_market="fr")
    result = ranking.vs_baseline(_gate("ndcg_at_k_vs_baseline", max_drop=0.02), "ndcg_at_k", data)
    fr = len(np.unique(data.query_ids[data.segments["market"] == "fr"]))
    row = result.rows[0]
    assert row["negatives"] >= fr and row["n"] == 200
    assert row["positives"] + row["negatives"] == 200
    assert np.isfinite(result.observed)


def test_segments_without_relevance_or_support_are_not_judged_with_the_reason():
    data = _queries(n_queries=300, seed=5, no_relevance_market="fr")
    result = _segment(data, min_support=45, small_segments="warn")
    skipped = {r["value"]: r for r in result.rows if r["status"] == "not judged"}
    assert skipped["fr"]["reason"].startswith("no query with a relevant row")
    assert skipped["fr"]["positives"] == 0 and skipped["fr"]["n"] > 0
    assert "candidate" not in skipped["fr"]  # never a number
    small = _segment(data, min_support=100, small_segments="warn")
    reasons = [r["reason"] for r in small.rows if r["status"] == "not judged"]
    assert any("below min_support=100" in r for r in reasons)
    assert small.support["not_judged"] == len(reasons)


def test_nothing_judged_is_inconclusive():
    data = _queries(n_queries=40, seed=6)
    result = _segment(data, min_support=1000)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.support == {"segments": 0, "not_judged": 7, "pooled": 0}  # even pooled


def test_a_regression_in_small_markets_is_caught_when_pooled():
    data = _queries(n_queries=400, seed=13, noise=0.2)
    markets = np.unique(data.query_ids, return_inverse=True)[1] % 40  # 40 markets of 10 queries
    data.segments = {**data.segments, "market": np.array([f"m{m:02d}" for m in markets])}
    broken = np.isin(data.segments["market"], [f"m{m:02d}" for m in range(20)])
    only = {"min_support": 30, "segments": ["market"]}
    healthy = _segment(data, **only)
    data.candidate = np.where(broken, np.random.default_rng(1).normal(0, 1, broken.size),
                              data.candidate)  # fmt: skip
    pooled = _segment(data, **only)
    assert healthy.verdict is Verdict.PASS, healthy.summary
    assert pooled.verdict is Verdict.FAIL and "market=(small segments" in pooled.summary
    assert pooled.support["pooled"] == 40
    warned = _segment(data, **only, small_segments="warn")
    assert warned.verdict is Verdict.INCONCLUSIVE and "no segment judged" in warned.summary
    assert _segment(data, **only, small_segments="block").verdict is Verdict.INCONCLUSIVE


def test_segment_intervals_are_bonferroni_over_the_judged_segments():
    result = _segment(_queries(seed=7), confidence=0.9)
    judged = result.support["segments"]
    assert judged == 7  # five markets, two devices
    assert f"{1 - 0.1 / judged:.2%}" in result.method
    assert all(r["low"] < r["delta"] < r["high"] for r in result.rows)


def test_first_release_must_beat_a_random_ranking():
    data = _queries(n_queries=200, seed=8)
    data.trivial_baseline = True
    data.baseline = np.random.default_rng(0).uniform(size=len(data.y))
    gate = _gate("ndcg_at_k_vs_baseline", max_drop=0.01)
    good = ranking.vs_baseline(gate, "ndcg_at_k", data)
    assert good.verdict is Verdict.PASS and "random" in good.summary
    data.candidate = -data.candidate  # ranks the worst first
    assert ranking.vs_baseline(gate, "ndcg_at_k", data).verdict is Verdict.FAIL
    assert _segment(data).verdict is Verdict.PASS  # does not apply without production


def test_floor_passes_fails_and_is_inconclusive_below_support():
    data = _queries(n_queries=100, seed=9)
    value = ranking.floor(_gate("min_ndcg_at_k", threshold=0.5), "ndcg_at_k", data)
    assert value.verdict is Verdict.PASS and value.observed > 0.5
    high = ranking.floor(_gate("min_ndcg_at_k", threshold=0.99), "ndcg_at_k", data)
    assert high.verdict is Verdict.FAIL
    few = ranking.floor(
        _gate("min_recall_at_k", threshold=0.1, min_support=1000), "recall_at_k", data
    )
    assert few.verdict is Verdict.INCONCLUSIVE and few.observed is None
    assert "below min_support=1000" in few.summary


def test_nan_scores_fail_valid_predictions_with_row_ids_and_stop_the_metrics():
    data = _queries(n_queries=30, seed=10)
    gate = _gate("valid_predictions")
    assert ranking_report.valid_predictions(gate, data).verdict is Verdict.PASS
    data.candidate[[3, 17]] = [np.nan, np.inf]
    data.candidate[5] = 42.0  # any finite number is a ranking score
    result = ranking_report.valid_predictions(gate, data)
    assert result.verdict is Verdict.FAIL
    assert [e["row_id"] for e in result.examples] == ["r000003", "r000017"]
    other = ranking.vs_baseline(_gate("ndcg_at_k_vs_baseline", max_drop=0.01), "ndcg_at_k", data)
    assert other.verdict is Verdict.INCONCLUSIVE and "valid_predictions" in other.summary


def test_segment_must_be_constant_within_a_query():
    queries = pd.Series(["a", "a", "b", "b"])
    check_query_segments(queries, pd.DataFrame({"segment__market": ["us", "us", "uk", "uk"]}))
    with pytest.raises(DataInputError, match="'market' takes several values within 1 queries"):
        check_query_segments(queries, pd.DataFrame({"segment__market": ["us", "uk", "uk", "uk"]}))


def test_metrics_table_reports_support_and_undefined_reasons():
    data = _queries(n_queries=120, seed=11, no_relevance_market="fr")
    table = ranking_metrics_table(data, ["market", "device"], [5, 10])
    assert set(table["metric"]) == {"ndcg@5", "ndcg@10", "recall@5", "recall@10"}
    fr = table[(table["segment"] == "market=fr") & (table["metric"] == "ndcg@10")].iloc[0]
    assert fr["undefined"].startswith("no query with a relevant row")
    assert pd.isna(fr["candidate"]) and fr["with_relevant"] == 0 and fr["queries"] > 0
    everything = table[(table["segment"] == "(all)") & (table["metric"] == "recall@10")].iloc[0]
    assert everything["queries"] == 120 and everything["undefined"] == ""
    assert everything["delta"] == pytest.approx(everything["candidate"] - everything["baseline"])


def test_too_few_queries_is_inconclusive_with_or_without_production():
    data = _queries(n_queries=20, seed=12)
    gate = _gate("ndcg_at_k_vs_baseline", max_drop=0.01, min_support=30)
    result = ranking.vs_baseline(gate, "ndcg_at_k", data)
    assert result.verdict is Verdict.INCONCLUSIVE and "below min_support 30" in result.summary
    data.trivial_baseline = True
    assert ranking.vs_baseline(gate, "ndcg_at_k", data).verdict is Verdict.INCONCLUSIVE
