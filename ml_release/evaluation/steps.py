"""The evaluation steps of one release run, as the evaluation assets call them.

Both models score the same rows; their predictions go into tables keyed by the candidate's
digest (`PredictionTables`), the baseline's naming the model it holds; the report judges the
pairs and stamps every result with the baseline it compared against and the data it judged.
"""

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from ml_release import keys
from ml_release.evaluation.data import PredictionTables
from ml_release.evaluation.report import Evaluation
from ml_release.evaluation.tasks import EvaluationTask
from ml_release.feature_code import load_feature_code
from ml_release.promotion import NO_BASELINE
from ml_release.sources import data_version
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef
from ml_release.warehouse import Warehouse


@dataclass(frozen=True)
class Scored:
    """One model's predictions as stored, and what the asset shows about them."""

    table: str
    rows: int
    per_set: dict[str, int]
    invalid: int = 0


def _store(warehouse: Warehouse, table: str, frame: pd.DataFrame, invalid: int = 0) -> Scored:
    rows = warehouse.replace_from_frame(table, frame)
    counts = {str(k): int(v) for k, v in frame.groupby("eval_set").size().items()}
    return Scored(table, rows, counts, invalid)


@dataclass(frozen=True)
class Predictions:
    """What one scoring step stored: the candidate's scores, the baseline's, or both."""

    candidate: Scored | None = None
    baseline: Scored | None = None
    baseline_kind: str = ""  # "production <version>", or the trivial model's description


def score_models(
    task: EvaluationTask,
    warehouse: Warehouse,
    spec: ReleaseSpec,
    candidate: ModelRef,
    production: ModelRef | None,
    wanted: Collection[str] = (keys.CANDIDATE_PREDICTIONS, keys.BASELINE_PREDICTIONS),
) -> Predictions:
    """Both models score the task's rows, read once; each model's scores go to its own table.

    Args:
        task: How the task's rows are read, scored and stored.
        warehouse: The warehouse holding the evaluation sets and the prediction tables.
        spec: The release spec.
        candidate: The candidate under release; its digest keys both tables.
        production: The production model, or None before the first release (a trivial
            model's scores stand in for it).
        wanted: Which tables to fill: `keys.CANDIDATE_PREDICTIONS`, `keys.BASELINE_PREDICTIONS`.
    """
    rows = task.rows(warehouse, spec)
    tables = PredictionTables(candidate.digest)
    stored = {}
    if keys.CANDIDATE_PREDICTIONS in wanted:
        scores = task.score(candidate.folder, spec, rows, digest=candidate.digest)
        frame = task.table(rows, scores, spec)
        stored["candidate"] = _store(warehouse, tables.candidate, frame, len(task.invalid(scores)))
    if keys.BASELINE_PREDICTIONS in wanted:
        if production is None:
            scores, stored["baseline_kind"] = task.trivial(warehouse, spec, rows)
        else:
            scores = task.score(production.folder, spec, rows, digest=production.digest)
            stored["baseline_kind"] = f"production {production.version}"
        frame = task.table(rows, scores, spec)
        frame["baseline_digest"] = production.digest if production else NO_BASELINE
        stored["baseline"] = _store(warehouse, tables.baseline, frame)
    return Predictions(**stored)


def judge_candidate(
    task: EvaluationTask, warehouse: Warehouse, spec: ReleaseSpec, candidate_digest: str
) -> Evaluation:
    """Every gate of the task judged on the stored pairs, each result stamped with its pair."""
    tables = PredictionTables(candidate_digest)
    baseline = tables.baseline_digest(warehouse)
    report = task.evaluate(warehouse, spec, tables, baseline == NO_BASELINE)
    version = data_version(warehouse, load_feature_code(spec.features.code).version)
    for result in report.results:
        result.baseline_digest = baseline
        result.data_version = version
    return report
