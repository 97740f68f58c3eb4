"""What each tabular model task plugs into the evaluation assets (`assets/evaluation.py`).

For every task both models score the same rows and one report judges the pairs. What differs
is here: which tables the rows come from and how they are read, how a model scores them, which
scores are unusable, what stands in for production before the first release, how the stored
predictions look, and how the report is computed.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.evaluation import ranking_data
from ml_release.evaluation.data import PredictionTables
from ml_release.evaluation.ranking_report import evaluate_ranking
from ml_release.evaluation.report import Evaluation
from ml_release.evaluation.run import evaluate
from ml_release.evaluation.task_data import (
    class_prior,
    class_probabilities,
    invalid_predictions,
    invalid_probability_rows,
    multiclass_rows,
    predict,
    prediction_table,
    regression_rows,
    training_mean,
)
from ml_release.evaluation.task_reports import evaluate_multiclass, evaluate_regression
from ml_release.scoring import (
    evaluation_rows,
    invalid_rows,
    predictions_table,
    score,
    training_prior,
)
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

Scores = np.ndarray | pd.DataFrame
# The evaluation rows: raw rows of both sets, their segment values from the feature tables.
EVALUATION_INPUTS = (
    keys.EVALUATION_HOLDOUT,
    keys.SERVING_LOG,
    keys.EVALUATION_FEATURES,
    keys.SERVING_FEATURES_RECOMPUTED,
)


@dataclass(frozen=True)
class EvaluationTask:
    """One task's scoring and judging functions, and the words its assets show."""

    inputs: tuple[str, ...]  # the tables the evaluation rows are read from
    rows: Callable[[Warehouse, ReleaseSpec], pd.DataFrame]
    # Scores: one number per row, or (multi-class) one column of probabilities per class.
    # Called as score(artifact folder, spec, rows, digest=the registry's digest).
    score: Callable[..., Scores]
    invalid: Callable[[Scores], np.ndarray]  # positions of unusable scores
    invalid_means: str  # what an unusable score is, for the log
    trivial: Callable[[Warehouse, ReleaseSpec, pd.DataFrame], tuple[Scores, str]]
    table: Callable[[pd.DataFrame, Scores, ReleaseSpec], pd.DataFrame]
    counts: Callable[[pd.DataFrame], dict[str, int]]  # candidate metadata beyond row counts
    # (warehouse, spec, the candidate's prediction tables, trivial baseline?)
    evaluate: Callable[[Warehouse, ReleaseSpec, PredictionTables, bool], Evaluation]
    candidate_description: str
    baseline_description: str


def constant_prior(
    warehouse: Warehouse, spec: ReleaseSpec, rows: pd.DataFrame
) -> tuple[np.ndarray, str]:
    """The trivial classifier: the training positive rate for every row; and its description."""
    prior = training_prior(warehouse, spec)
    return np.full(len(rows), prior), f"trivial (constant {prior:.4f}): no production model yet"


def seeded_random_ranking(
    warehouse: Warehouse, spec: ReleaseSpec, rows: pd.DataFrame
) -> tuple[np.ndarray, str]:
    """The trivial ranker: a random order seeded by `evaluation.seed`; and its description."""
    seed = spec.evaluation.seed
    scores = ranking_data.random_ranking(len(rows), seed)
    return scores, f"trivial (random ranking, seed {seed}): no production model yet"


CLASSIFICATION = EvaluationTask(
    inputs=EVALUATION_INPUTS,
    rows=evaluation_rows,
    score=score,
    invalid=invalid_rows,
    invalid_means="not probabilities",
    trivial=constant_prior,
    table=predictions_table,
    counts=lambda rows: {},
    evaluate=evaluate,
    candidate_description="The candidate's scores on the holdout and the labelled serving "
    "requests.",
    baseline_description="Production's scores on the same rows, or a trivial model's when "
    "nothing is live.",
)

RANKING = EvaluationTask(
    inputs=(keys.EVALUATION_HOLDOUT,),  # the serving log carries no query column
    rows=ranking_data.ranking_rows,
    score=ranking_data.expected_relevance,
    invalid=ranking_data.invalid_scores,
    invalid_means="NaN or infinite",
    trivial=seeded_random_ranking,
    table=ranking_data.ranking_predictions_table,
    counts=lambda rows: {"queries": int(rows[ranking_data.QUERY].nunique())},
    evaluate=evaluate_ranking,
    candidate_description="The candidate's ranking scores (expected relevance) on the "
    "holdout's queries.",
    baseline_description="Production's ranking scores on the same rows, or a random ranking "
    "before the first.",
)


REGRESSION = EvaluationTask(
    inputs=EVALUATION_INPUTS,
    rows=regression_rows,
    score=predict,
    invalid=invalid_predictions,
    invalid_means="NaN or infinite",
    trivial=training_mean,
    table=prediction_table,
    counts=lambda rows: {},
    evaluate=evaluate_regression,
    candidate_description="The candidate's predictions on the holdout and the labelled "
    "serving requests.",
    baseline_description="Production's predictions on the same rows, or the training mean "
    "when nothing is live.",
)

MULTICLASS = EvaluationTask(
    inputs=EVALUATION_INPUTS,
    rows=multiclass_rows,
    score=class_probabilities,
    invalid=invalid_probability_rows,
    invalid_means="not finite probabilities",
    trivial=class_prior,
    table=prediction_table,
    counts=lambda rows: {"classes": int(rows["label"].nunique())},
    evaluate=evaluate_multiclass,
    candidate_description="The candidate's class probabilities on the holdout and the "
    "labelled serving requests.",
    baseline_description="Production's class probabilities on the same rows, or the training "
    "class shares when nothing is live.",
)
TASKS = {"ranking": RANKING, "regression": REGRESSION, "multiclass_classification": MULTICLASS}


def evaluation_task(spec: ReleaseSpec) -> EvaluationTask:
    """The evaluation functions of `spec`'s model task."""
    return TASKS.get(spec.model.task, CLASSIFICATION)
