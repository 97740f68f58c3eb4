"""The evaluation steps of one release run, as the evaluation assets call them.

Both models score the same rows; their predictions go into tables keyed by the candidate's
digest (`PredictionTables`), the baseline's naming the model it holds; the report judges the
pairs and stamps every result with the baseline it compared against and the data it judged.
"""

from dataclasses import dataclass

import pandas as pd

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


def score_candidate(
    task: EvaluationTask, warehouse: Warehouse, spec: ReleaseSpec, candidate: ModelRef
) -> Scored:
    """The candidate's scores on the task's rows, stored under its digest."""
    rows = task.rows(warehouse, spec)
    scores = task.score(candidate.folder, spec, rows, digest=candidate.digest)
    frame = task.table(rows, scores, spec)
    table = PredictionTables(candidate.digest).candidate
    return _store(warehouse, table, frame, len(task.invalid(scores)))


def score_baseline(
    task: EvaluationTask,
    warehouse: Warehouse,
    spec: ReleaseSpec,
    candidate_digest: str,
    production: ModelRef | None,
) -> tuple[Scored, str]:
    """Production's scores on the same rows (a trivial model's before the first release).

    Returns the stored scores and a description of the baseline.
    """
    rows = task.rows(warehouse, spec)
    if production is None:
        scores, kind = task.trivial(warehouse, spec, rows)
    else:
        scores = task.score(production.folder, spec, rows, digest=production.digest)
        kind = f"production {production.version}"
    frame = task.table(rows, scores, spec)
    frame["baseline_digest"] = production.digest if production else NO_BASELINE
    table = PredictionTables(candidate_digest).baseline
    return _store(warehouse, table, frame), kind


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
