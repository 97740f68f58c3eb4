"""The paired ranking data (`model.task: ranking`): both models' scores on the holdout's queries.

A ranking model is a classifier over the relevance grades (`ml_release.model.build_pipeline`);
its score for a row is the expected grade, sum over grades g of g x P(grade = g), a real number
that orders the rows of a query. Both models score the same rows, and the evaluation works on
the holdout only (the serving log carries no query column). Segments are sets of queries: a
segment column must be constant within each query, so every query lies in one segment.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.artifacts.skops_io import load_model
from ml_release.errors import DataInputError
from ml_release.evaluation.data import (
    EvalSet,
    PredictionTables,
    paired_arrays,
    paired_predictions,
)
from ml_release.feature_code import load_feature_code
from ml_release.featurize import check_raw_columns
from ml_release.identifiers import quote
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

HOLDOUT = "holdout"
QUERY = "query_id"
MAX_LISTED = 5


@dataclass
class RankingSet(EvalSet):
    """An `EvalSet` of holdout rows with graded relevance as `y`, and every row's query."""

    query_ids: np.ndarray

    @property
    def invalid(self) -> np.ndarray:
        """Positions of candidate scores that are NaN or infinite."""
        return invalid_scores(self.candidate)


def invalid_scores(scores: np.ndarray) -> np.ndarray:
    """Positions of scores that cannot rank rows (NaN, inf); any finite number is a score."""
    return np.flatnonzero(~np.isfinite(np.asarray(scores, dtype=float)))


def check_query_column(warehouse: Warehouse, spec: ReleaseSpec, table: str) -> str:
    """The spec's query column; DataInputError naming `table` when the column is not in it."""
    query = spec.data.query_column
    present = warehouse.columns(table)
    if query not in present:
        raise DataInputError(
            f"data.query_column: column {query!r} is not in {table} "
            f"({spec.source_for(table).describe()}). Present: "
            f"{', '.join(present)}. Fix: export the query column, or name it in the spec."
        )
    return query


def _check_relevance(frame: pd.DataFrame, label: str) -> np.ndarray:
    relevance = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(relevance) | (relevance < 0)
    if bad.any():
        shown = ", ".join(frame["row_id"].astype(str).to_numpy()[bad][:MAX_LISTED])
        raise DataInputError(
            f"{keys.EVALUATION_HOLDOUT}: label {label!r} must be a graded relevance >= 0 for "
            f"model.task ranking; {int(bad.sum())} row(s) are not, e.g. {shown}. Fix: grade "
            "relevance as 0 (not relevant), 1, 2, ..."
        )
    return relevance


def check_query_segments(queries: pd.Series, segments: pd.DataFrame) -> None:
    """Raise DataInputError when a segment column takes several values within one query."""
    problems = []
    for column in segments.columns:
        per_query = segments[column].groupby(queries.to_numpy()).nunique(dropna=False)
        mixed = per_query[per_query > 1]
        if len(mixed):
            shown = ", ".join(str(q) for q in mixed.index[:MAX_LISTED])
            problems.append(
                f"segment {column.removeprefix('segment__')!r} takes several values within "
                f"{len(mixed)} queries, e.g. {shown}"
            )
    if problems:
        raise DataInputError(
            "ranking segments must be constant within a query (a segment is a set of queries): "
            + "; ".join(problems)
            + ". Fix: segment by a query-level column, or remove it from data.segments."
        )


def ranking_rows(warehouse: Warehouse, spec: ReleaseSpec) -> pd.DataFrame:
    """Raw holdout rows with `eval_set`, `row_id`, `query_id`, `label` and segment columns."""
    code = load_feature_code(spec.features.code)
    raw_columns = list(code.required_columns)
    query = check_query_column(warehouse, spec, keys.EVALUATION_HOLDOUT)
    label = spec.data.label
    needed = {spec.data.id_column: "categorical", label: "numeric"} | code.required_columns
    table = keys.EVALUATION_HOLDOUT
    where = spec.source_for(table).describe()
    check_raw_columns(warehouse.columns(table), needed, table, where)
    frame = warehouse.frame(
        f"SELECT {quote(spec.data.id_column)} AS row_id, {quote(query)} AS {QUERY}, "
        f"{quote(label)} AS label, {', '.join(quote(c) for c in raw_columns)} "
        f"FROM {quote(keys.EVALUATION_HOLDOUT)} ORDER BY row_id"
    )
    frame["label"] = _check_relevance(frame, label)
    frame["row_id"] = frame["row_id"].astype(str)
    frame[QUERY] = frame[QUERY].astype(str)
    features = code.compute(frame[raw_columns])
    for segment in spec.data.segments:
        source = features[segment] if segment in features else frame[segment]
        frame[f"segment__{segment}"] = source.astype(str)
    check_query_segments(frame[QUERY], frame[[f"segment__{s}" for s in spec.data.segments]])
    return frame.assign(eval_set=HOLDOUT)


def expected_relevance(
    folder: Path, spec: ReleaseSpec, rows: pd.DataFrame, digest: str | None = None
) -> np.ndarray:
    """The expected grade of every row under the model at `folder` (safe-loaded)."""
    model = load_model(folder, feature_code=spec.features.code, digest=digest)
    grades = np.asarray(model.classes_)
    if grades.dtype.kind not in "biuf":
        raise DataInputError(
            f"{folder}: the model's classes are {list(grades)}; a ranking model is a classifier "
            "over numeric relevance grades (0, 1, 2, ...)"
        )
    raw_columns = list(load_feature_code(spec.features.code).required_columns)
    return np.asarray(model.predict_proba(rows[raw_columns]) @ grades.astype(float), dtype=float)


def random_ranking(n: int, seed: int) -> np.ndarray:
    """The trivial model's scores: a seeded random order, what knowing nothing achieves."""
    return np.random.default_rng(seed).uniform(size=n)


def ranking_predictions_table(rows: pd.DataFrame, scores: np.ndarray, spec) -> pd.DataFrame:
    """The stored predictions: keys, query, relevance, segments and the score."""
    segments = [f"segment__{s}" for s in spec.data.segments]
    out = rows[["eval_set", "row_id", QUERY, "label", *segments]].copy()
    out["score"] = scores
    return out


def load_ranking_set(
    warehouse: Warehouse, tables: PredictionTables, segments: list[str], trivial_baseline: bool
) -> RankingSet:
    """Join candidate and baseline predictions on (eval_set, row_id), holdout rows only."""
    frame = paired_predictions(warehouse, tables, segments, extra=(QUERY,), eval_set=HOLDOUT)
    if frame.empty:
        raise DataInputError(
            f"{keys.CANDIDATE_PREDICTIONS} and {keys.BASELINE_PREDICTIONS} share no holdout "
            "row: materialize both predictions for this candidate first"
        )
    return RankingSet(
        name=HOLDOUT,
        query_ids=frame[QUERY].astype(str).to_numpy(),
        y=frame["label"].to_numpy(dtype=float),
        trivial_baseline=trivial_baseline,
        **paired_arrays(frame, segments),  # type: ignore[arg-type]
    )
