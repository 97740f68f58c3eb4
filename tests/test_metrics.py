"""The metric layer against scikit-learn, scipy and straightforward loops."""

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn import metrics as skm

from ml_release.metrics import (
    CROSS,
    METRICS,
    RANKING_METRICS,
    MetricInputError,
    compute_metrics,
    expected_calibration_error,
    ndcg_at_k,
    ndcg_by_query,
    recall_at_k,
    recall_by_query,
    reliability_table,
    segment_metrics,
)

SEEDS = [0, 1, 2, 3, 4]


def _data(seed: int, n: int = 500, decimals: int = 2):
    """Labels and scores with many ties (rounded), including exact 0 and 1 scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    score = np.clip(0.25 * y + rng.normal(0.4, 0.25, n), 0, 1).round(decimals)
    return y, score


def _values(y, score, **kwargs):
    return {name: m.value for name, m in compute_metrics(y, score, **kwargs).items()}


# --- each metric against scikit-learn ------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.62])
def test_threshold_metrics_match_sklearn(seed, threshold):
    y, score = _data(seed)
    predicted = (score >= threshold).astype(int)
    values = _values(y, score, threshold=threshold)
    assert values["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert values["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert values["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert values["positive_rate"] == pytest.approx(predicted.mean())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", [1, 2, 6])
def test_ranking_quality_matches_sklearn_and_mann_whitney_with_ties(seed, decimals):
    y, score = _data(seed, decimals=decimals)
    assert len(np.unique(score)) < len(score) or decimals == 6
    values = _values(y, score)
    assert values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    u = mannwhitneyu(score[y == 1], score[y == 0]).statistic
    assert values["roc_auc"] == pytest.approx(u / (y.sum() * (1 - y).sum()), abs=1e-12)
    assert values["pr_auc"] == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_probability_scores_match_sklearn(seed):
    y, score = _data(seed)
    assert (score == 0).any() and (score == 1).any()  # exercise the clipping
    values = _values(y, score)
    clipped = np.clip(score, 1e-15, 1 - 1e-15)
    assert values["log_loss"] == pytest.approx(skm.log_loss(y, clipped), rel=1e-12)
    by_hand = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert values["log_loss"] == pytest.approx(by_hand, rel=1e-12)
    assert values["brier"] == pytest.approx(skm.brier_score_loss(y, score), rel=1e-12)


def test_every_metric_has_a_declared_direction():
    directions = {name: m.greater_is_better for name, m in METRICS.items()}
    assert directions == {
        "precision": True,
        "recall": True,
        "f1": True,
        "roc_auc": True,
        "pr_auc": True,
        "log_loss": False,
        "brier": False,
        "ece": False,
        "positive_rate": None,
    }
    assert {m.greater_is_better for m in RANKING_METRICS.values()} == {True}


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_matrix_equals_metrics_on_resampled_rows(seed):
    y, score = _data(seed, n=120)
    rng = np.random.default_rng(seed + 100)
    counts = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=6)
    counts[0] = 2 * (1 - y)  # a resample without positives: NaN where undefined, as unweighted
    labels = y.astype(bool)
    for name, (function, _) in METRICS.items():
        batch = function(labels, score, counts, threshold=0.4)
        assert batch.shape == (6,)
        for b, row in enumerate(counts):
            rows = np.repeat(np.arange(len(y)), row)
            expected = function(labels[rows], score[rows], threshold=0.4)
            assert batch[b] == pytest.approx(expected, rel=1e-10, nan_ok=True), name
            vector = function(labels, score, row, threshold=0.4)
            assert vector == pytest.approx(expected, rel=1e-10, nan_ok=True), name
    assert np.isnan(METRICS["roc_auc"].function(labels, score, counts)[0])


# --- undefined, never a made-up number ------------------------------------------------------


@pytest.mark.reliability("input")
def test_single_class_leaves_class_metrics_undefined_and_keeps_the_others():
    score = np.array([0.2, 0.7, 0.9, 0.4])
    only_negatives = compute_metrics(np.zeros(4, dtype=int), score)
    for name in ("roc_auc", "pr_auc"):
        assert only_negatives[name].value is None
        assert only_negatives[name].undefined_reason == "one class only (0 positives)"
    assert only_negatives["recall"].value is None
    assert only_negatives["f1"].value is None
    assert "0 positives" in only_negatives["f1"].undefined_reason
    assert only_negatives["precision"].value == 0.0  # two false positives: a real finding
    assert only_negatives["log_loss"].value == pytest.approx(
        skm.log_loss(np.zeros(4), score, labels=[0, 1])
    )
    only_positives = compute_metrics(np.ones(4, dtype=int), score)
    assert only_positives["roc_auc"].undefined_reason == "one class only (0 negatives)"
    assert only_positives["pr_auc"].value is None
    assert only_positives["recall"].value == 0.5


def test_no_predicted_positives_leaves_precision_undefined_and_f1_zero():
    y, score = np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    result = compute_metrics(y, score, threshold=0.5)
    assert result["precision"].value is None
    assert result["precision"].undefined_reason == "no predicted positives at threshold 0.5"
    assert result["f1"].value == skm.f1_score(y, score >= 0.5, zero_division=0) == 0.0
    assert result["positive_rate"].value == 0.0
    assert result["roc_auc"].value == skm.roc_auc_score(y, score) == 0.75


def test_min_support_makes_every_metric_undefined():
    y, score = _data(0, n=12)
    result = compute_metrics(y, score, min_support=200)
    for metric in result.values():
        assert metric.value is None
        assert metric.undefined_reason == "n=12 below min_support=200"
        assert metric.support.n == 12
        assert metric.support.positives + metric.support.negatives == 12
    assert all(m.value is not None for m in compute_metrics(y, score, min_support=12).values())


def test_unknown_metric_and_min_support_below_one_are_refused():
    y, score = _data(0, n=10)
    with pytest.raises(ValueError, match="Unknown metric"):
        compute_metrics(y, score, names=["accuracy"])
    with pytest.raises(ValueError, match="min_support"):
        compute_metrics(y, score, min_support=0)
    assert list(compute_metrics(y, score, names=["brier", "f1"])) == ["brier", "f1"]


# --- input validation ------------------------------------------------------------------------


def test_valid_inputs_of_any_numeric_or_bool_dtype_pass():
    score = np.array([0.0, 0.5, 1.0])
    expected = _values(np.array([0, 1, 1]), score)
    assert _values(np.array([False, True, True]), score) == expected
    assert _values([0.0, 1.0, 1.0], score.tolist()) == expected


@pytest.mark.parametrize(
    ("bad_value", "shown"),
    [(np.nan, "nan"), (np.inf, "inf"), (1.2, "1.2"), (-0.1, "-0.1")],
)
def test_scores_outside_zero_one_are_refused_with_row_indices(bad_value, shown):
    y, score = _data(0, n=30)
    score = score.astype(float)
    score[[3, 17]] = bad_value
    with pytest.raises(ValueError, match=r"row indices 3, 17 ") as caught:
        compute_metrics(y, score)
    assert isinstance(caught.value, MetricInputError)
    assert caught.value.column == "score"
    assert caught.value.rows == (3, 17)
    assert shown in str(caught.value)


def test_many_bad_rows_list_the_first_ten_and_count_the_rest():
    score = np.full(25, 1.5)
    with pytest.raises(MetricInputError, match=r"row indices 0, 1, .*, 9 and 15 more") as caught:
        compute_metrics(np.zeros(25), score)
    assert caught.value.rows == tuple(range(10))
    assert caught.value.count == 25


@pytest.mark.parametrize("bad_label", [2, -1, 0.5, np.nan])
def test_labels_other_than_zero_and_one_are_refused(bad_label):
    y = np.array([0, 1, 0, 1, 0], dtype=float)
    y[4] = bad_label
    with pytest.raises(MetricInputError, match=r"y must be a 0/1 label.*row indices 4 ") as caught:
        compute_metrics(y, np.full(5, 0.5))
    assert caught.value.rows == (4,)


def test_object_labels_with_missing_values_and_mismatched_lengths_are_refused():
    with pytest.raises(MetricInputError, match=r"row indices 1 \(values None\)"):
        compute_metrics(np.array([1, None, 0], dtype=object), np.full(3, 0.5))
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics(np.array([0, 1]), np.array([0.5]))


# --- calibration ----------------------------------------------------------------------------


def _ece_by_loop(y, score, bins=10):
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for b in range(bins):
        lower, upper = edges[b], edges[b + 1]
        rows = [i for i, s in enumerate(score) if lower < s <= upper or (b == 0 and s == lower)]
        if rows:
            mean_score = sum(score[i] for i in rows) / len(rows)
            mean_label = sum(y[i] for i in rows) / len(rows)
            total += len(rows) / len(score) * abs(mean_score - mean_label)
    return total


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bins", [10, 7])
def test_ece_matches_a_loop_over_bins(seed, bins):
    y, score = _data(seed, decimals=1)  # many scores lie exactly on bin edges
    expected = _ece_by_loop(y, score, bins)
    assert expected > 0
    assert expected_calibration_error(y, score, bins=bins) == pytest.approx(expected, abs=1e-12)
    if bins == 10:
        assert _values(y, score)["ece"] == pytest.approx(expected, abs=1e-12)


def test_bins_are_right_closed_and_the_first_holds_zero():
    score = np.array([0.0, 0.1, 0.1000001, 0.3, 0.95, 1.0])
    table = reliability_table(np.array([0, 0, 1, 1, 0, 1]), score)
    assert table["count"].tolist() == [2, 1, 1, 0, 0, 0, 0, 0, 0, 2]
    assert table["mean_score"].iloc[0] == pytest.approx(0.05)
    assert table["mean_label"].iloc[9] == pytest.approx(0.5)
    assert np.isnan(table["mean_score"].iloc[5])


@pytest.mark.parametrize("seed", SEEDS)
def test_reliability_table_counts_sum_to_n_and_means_match_a_loop(seed):
    y, score = _data(seed)
    table = reliability_table(y, score)
    assert list(table.columns) == ["lower", "upper", "count", "mean_score", "mean_label"]
    assert table["count"].sum() == len(y)
    assert table["lower"].iloc[0] == 0 and table["upper"].iloc[-1] == 1
    occupied = table[table["count"] > 0]
    weighted_gap = occupied["count"] * (occupied["mean_score"] - occupied["mean_label"]).abs()
    assert weighted_gap.sum() / len(y) == pytest.approx(_ece_by_loop(y, score))


# --- segments -------------------------------------------------------------------------------


def _segments(seed, n):
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.45, 0.05])
    channel = rng.choice(["web", "store"], n)
    return {"region": region, "channel": channel, "tier": rng.integers(1, 4, n)}


def _same(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].support == expected[name].support
        assert actual[name].undefined_reason == expected[name].undefined_reason
        if expected[name].value is None:
            assert actual[name].value is None
        else:
            assert actual[name].value == pytest.approx(expected[name].value, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_metrics_equal_metrics_on_the_filtered_rows(seed):
    y, score = _data(seed, n=600)
    segments = _segments(seed, len(y))
    result = segment_metrics(y, score, segments, min_support=40, threshold=0.4)
    expected_keys = {(c, str(v)) for c, values in segments.items() for v in np.unique(values)}
    assert set(result) == expected_keys
    for (column, value), metrics in result.items():
        rows = segments[column].astype(str) == value
        _same(metrics, compute_metrics(y[rows], score[rows], min_support=40, threshold=0.4))
    assert any(
        m["roc_auc"].undefined_reason.startswith("n=")
        for m in result.values()
        if m["roc_auc"].value is None
    )  # the small "east" segment


def test_crossings_equal_metrics_on_rows_matching_both_values():
    y, score = _data(3, n=600)
    segments = _segments(3, len(y))
    result = segment_metrics(y, score, segments, crossings=True, names=["roc_auc", "brier"])
    crossed = [key for key in result if CROSS in key[0]]
    assert {column for column, _ in crossed} == {
        f"region{CROSS}channel",
        f"region{CROSS}tier",
        f"channel{CROSS}tier",
    }
    assert ("region\u00d7channel", "south\u00d7web") in result
    for column, value in crossed:
        (first, second), (a, b) = column.split(CROSS), value.split(CROSS)
        rows = (segments[first].astype(str) == a) & (segments[second].astype(str) == b)
        assert rows.any()
        expected = compute_metrics(y[rows], score[rows], names=["roc_auc", "brier"])
        _same(result[(column, value)], expected)
    assert sum(result[k]["brier"].support.n for k in crossed if k[0] == crossed[0][0]) == len(y)


def test_missing_segment_values_form_their_own_segment():
    y, score = np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.6, 0.3])
    region = np.array(["a", None, "a", None], dtype=object)
    result = segment_metrics(y, score, {"region": region}, names=["brier"])
    assert set(result) == {("region", "a"), ("region", "None")}
    assert result[("region", "None")]["brier"].value == pytest.approx((0.2**2 + 0.3**2) / 2)
    with pytest.raises(ValueError, match="Segment column 'region'"):
        segment_metrics(y, score, {"region": region[:3]})


# --- ranking --------------------------------------------------------------------------------


def _queries(seed, n_queries=40, tied=False):
    """Shuffled rows of queries of 2-15 items; some queries have no relevant item."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 16, n_queries)
    query = np.repeat(np.arange(n_queries) * 7 + 100, sizes)
    relevance = rng.choice([0, 0, 0, 1, 2, 3], len(query)).astype(float)
    relevance[query == 100] = 0  # the first query has nothing relevant
    score = rng.random(len(query)).round(1 if tied else 12)
    order = rng.permutation(len(query))
    return relevance[order], score[order], query[order]


def _by_loop(relevance, score, query, k):
    """Per-query (ndcg, recall), ranking by score with ties in row order (a stable sort)."""
    out = {}
    for q in np.unique(query):
        rows = np.flatnonzero(query == q)
        ranked = sorted(rows, key=lambda i: -score[i])[:k]
        ideal = sorted(relevance[rows], reverse=True)[:k]
        dcg = sum(relevance[i] / math.log2(p + 2) for p, i in enumerate(ranked))
        idcg = sum(r / math.log2(p + 2) for p, r in enumerate(ideal))
        relevant = (relevance[rows] > 0).sum()
        hits = sum(relevance[i] > 0 for i in ranked)
        out[q] = (dcg / idcg, hits / relevant) if relevant else (np.nan, np.nan)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_ndcg_matches_sklearn_per_query_without_ties(seed, k):
    relevance, score, query = _queries(seed)
    queries, ndcg = ndcg_by_query(relevance, score, query, k)
    for q, value in zip(queries, ndcg, strict=True):
        rows = query == int(q)
        if relevance[rows].sum() == 0:
            assert np.isnan(value)
            continue
        expected = skm.ndcg_score([relevance[rows]], [score[rows]], k=k, ignore_ties=True)
        assert value == pytest.approx(expected, abs=1e-12)
    result = ndcg_at_k(relevance, score, query, k)
    assert result.name == f"ndcg@{k}"
    assert result.value == pytest.approx(np.nanmean(ndcg))
    assert result.support.n == 40 and result.support.negatives >= 1
    assert result.support.positives + result.support.negatives == 40


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 5])
def test_recall_at_k_matches_sklearn_recall_on_the_top_k(seed, k):
    relevance, score, query = _queries(seed)
    queries, recall = recall_by_query(relevance, score, query, k)
    for q, value in zip(queries, recall, strict=True):
        rows = query == int(q)
        if not (relevance[rows] > 0).any():
            assert np.isnan(value)
            continue
        top_k = np.zeros(rows.sum(), dtype=bool)
        top_k[np.argsort(-score[rows])[:k]] = True
        assert value == pytest.approx(skm.recall_score(relevance[rows] > 0, top_k))
    assert recall_at_k(relevance, score, query, k).value == pytest.approx(np.nanmean(recall))


@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_ties_are_broken_by_row_order(seed):
    relevance, score, query = _queries(seed, tied=True)
    expected = _by_loop(relevance, score, query, k=3)
    for function, column in ((ndcg_by_query, 0), (recall_by_query, 1)):
        queries, values = function(relevance, score, query, 3)
        wanted = np.array([expected[int(q)][column] for q in queries])
        np.testing.assert_allclose(values, wanted, rtol=1e-12)


def test_ranking_without_relevant_rows_is_undefined_and_inputs_are_checked():
    relevance, score, query = np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 1, 2, 2])
    result = recall_at_k(relevance, score, query, 2)
    assert result.value is None
    assert result.undefined_reason == "no query with a relevant row (2 queries)"
    small = ndcg_at_k(np.array([0, 1, 0, 0]), score, query, 2, min_support=2)
    assert small.value is None and small.support.positives == 1
    with pytest.raises(MetricInputError, match=r"row indices 2 "):
        ndcg_at_k(np.array([0, 1, -1, 0]), score, query, 2)
    with pytest.raises(MetricInputError, match=r"score must be a finite number"):
        ndcg_at_k(np.ones(4), np.array([0.1, np.nan, 0.3, 0.4]), query, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ndcg_at_k(np.ones(4), score, query, 0)


def test_integer_labels_give_the_same_auc_as_bool_labels():
    from ml_release.metrics.classification import pr_auc, roc_auc

    y = np.array([0, 1, 0, 1, 1])
    score = np.array([0.1, 0.9, 0.2, 0.3, 0.8])
    assert roc_auc(y, score) == roc_auc(y.astype(bool), score) == 1.0
    assert pr_auc(y, score) == pr_auc(y.astype(bool), score)
