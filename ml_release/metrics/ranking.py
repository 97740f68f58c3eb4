"""Ranking metrics for `task: ranking`: NDCG@k and recall@k, averaged over queries.

Within each query, rows are ranked by score, highest first; **ties are broken by row order**
(the earlier row ranks higher), because one stable `numpy.lexsort` by (query, -score) ranks every
query at once. NDCG uses linear gains (the relevance itself, as scikit-learn does, not
`2**rel - 1`) and the discount `1 / log2(position + 2)`; it equals
`sklearn.metrics.ndcg_score(..., k=k, ignore_ties=True)` for a query whose scores have no ties.
Recall@k is (relevant rows in the top k) / (relevant rows in the query), relevant meaning
relevance > 0; it is not capped at k, so a query with more than k relevant rows cannot reach 1.

Queries with no relevant row have neither metric (NDCG's ideal gain is 0, recall's denominator
is 0): they are **excluded from the average** (scikit-learn would count them as 0) and counted
in the support. For these metrics `Support` counts queries, not rows: `n` queries in all,
`positives` queries with a relevant row (the ones averaged), `negatives` queries without.
"""

import numpy as np

from ml_release.metrics.calibration import group_codes, numeric_or_nan, offending_rows_error
from ml_release.metrics.classification import MetricDefinition, MetricValue, Support


def _check(y_relevance, score, query_ids, k):
    relevance, scores, queries = (np.asarray(a) for a in (y_relevance, score, query_ids))
    if not (relevance.ndim == scores.ndim == queries.ndim == 1) or not (
        len(relevance) == len(scores) == len(queries)
    ):
        raise ValueError(
            "y_relevance, score and query_ids must be 1-D and of equal length; got shapes "
            f"{relevance.shape}, {scores.shape}, {queries.shape}."
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    graded = numeric_or_nan(relevance)
    bad = ~np.isfinite(graded) | (graded < 0)
    if bad.any():
        raise offending_rows_error(
            "y_relevance",
            bad,
            relevance,
            "a finite relevance >= 0",
            "Grade relevance as 0, 1, 2...",
        )
    ranked = numeric_or_nan(scores)
    bad = ~np.isfinite(ranked)
    if bad.any():
        raise offending_rows_error(
            "score", bad, scores, "a finite number", "Score every row the model ranks."
        )
    labels, codes = group_codes(queries, "query_ids", len(queries))
    return graded, ranked, labels, codes


def _positions(codes: np.ndarray, key: np.ndarray) -> np.ndarray:
    """0-based position of each row within its query, ordered by `key` descending."""
    order = np.lexsort((-key, codes))  # stable: equal keys keep row order
    ordered = codes[order]
    first = np.searchsorted(ordered, ordered, side="left")
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - first
    return position


def _per_query(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(len(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def ndcg_by_query(y_relevance, score, query_ids, k: int) -> tuple[np.ndarray, np.ndarray]:
    """NDCG@k of every query.

    Args:
        y_relevance: Graded relevance per row, finite and >= 0.
        score: Model score per row, finite; higher ranks first.
        query_ids: Query of each row.
        k: Number of top positions that count.

    Returns:
        `(queries, ndcg)`: the distinct query ids, sorted, and their NDCG@k, NaN for a query
        without a relevant row.

    Raises:
        MetricInputError: A relevance is negative or not finite, or a score is not finite.
    """
    relevance, scores, queries, codes = _check(y_relevance, score, query_ids, k)

    def dcg(key):
        position = _positions(codes, key)
        gain = np.where(position < k, relevance / np.log2(position + 2), 0.0)
        return np.bincount(codes, weights=gain, minlength=len(queries))

    return queries, _per_query(dcg(scores), dcg(relevance))


def recall_by_query(y_relevance, score, query_ids, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k of every query (share of its relevant rows ranked in the top k).

    Args:
        y_relevance: Graded relevance per row, finite and >= 0; relevant means > 0.
        score: Model score per row, finite; higher ranks first.
        query_ids: Query of each row.
        k: Number of top positions that count.

    Returns:
        `(queries, recall)`: the distinct query ids, sorted, and their recall@k, NaN for a
        query without a relevant row.

    Raises:
        MetricInputError: A relevance is negative or not finite, or a score is not finite.
    """
    relevance, scores, queries, codes = _check(y_relevance, score, query_ids, k)
    relevant = relevance > 0
    hits = relevant & (_positions(codes, scores) < k)
    return queries, _per_query(
        np.bincount(codes, weights=hits, minlength=len(queries)),
        np.bincount(codes, weights=relevant, minlength=len(queries)),
    )


def _average(name: str, values: np.ndarray, min_support: int) -> MetricValue:
    evaluated = int(np.isfinite(values).sum())
    support = Support(len(values), evaluated, len(values) - evaluated)
    if evaluated == 0:
        reason = f"no query with a relevant row ({len(values)} queries)"
    elif evaluated < min_support:
        reason = f"{evaluated} queries with a relevant row, below min_support={min_support}"
    else:
        return MetricValue(name, float(np.nanmean(values)), None, support)
    return MetricValue(name, None, reason, support)


def ndcg_at_k(y_relevance, score, query_ids, k: int, *, min_support: int = 1) -> MetricValue:
    """Mean NDCG@k over the queries that have a relevant row (see the module docstring).

    Args:
        y_relevance: Graded relevance per row, finite and >= 0.
        score: Model score per row, finite; higher ranks first.
        query_ids: Query of each row.
        k: Number of top positions that count.
        min_support: Fewer queries with a relevant row than this leave the metric undefined.

    Returns:
        A `MetricValue` named `ndcg@k` whose support counts queries.
    """
    _, values = ndcg_by_query(y_relevance, score, query_ids, k)
    return _average(f"ndcg@{k}", values, min_support)


def recall_at_k(y_relevance, score, query_ids, k: int, *, min_support: int = 1) -> MetricValue:
    """Mean recall@k over the queries that have a relevant row (see the module docstring).

    Args:
        y_relevance: Graded relevance per row, finite and >= 0; relevant means > 0.
        score: Model score per row, finite; higher ranks first.
        query_ids: Query of each row.
        k: Number of top positions that count.
        min_support: Fewer queries with a relevant row than this leave the metric undefined.

    Returns:
        A `MetricValue` named `recall@k` whose support counts queries.
    """
    _, values = recall_by_query(y_relevance, score, query_ids, k)
    return _average(f"recall@{k}", values, min_support)


RANKING_METRICS: dict[str, MetricDefinition] = {
    "ndcg_at_k": MetricDefinition(ndcg_at_k, True),
    "recall_at_k": MetricDefinition(recall_at_k, True),
}
