"""Training a candidate from the release spec: the pipeline around the shared feature code.

Training reads the training source itself (not the warehouse), so a candidate is trained,
stored and registered, and known by its digest, before the release run that gates it starts.
The candidate is trained on the raw training snapshot through `FeatureTransformer`, i.e. the
same feature code that built `training_features`, so one artifact serves raw requests. The
newest 20 % of the snapshot (by timestamp) is held out for the training metrics. A ranking
model (`model.task: ranking`) is the same pipeline classifying relevance grades; it ranks by
the expected grade.
"""

import numpy as np
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.feature_code import load_feature_code
from ml_release.metrics import ndcg_at_k, recall_at_k
from ml_release.model import build_pipeline
from ml_release.sources import read_columns
from ml_release.spec import ReleaseSpec

VALIDATION_SHARE = 0.2


def train_candidate(spec: ReleaseSpec, seed: int = 0):
    """Fit the spec's pipeline on its training source; returns (pipeline, training metrics)."""
    code = load_feature_code(spec.features.code)
    raw_columns = list(code.required_columns)
    time, label = spec.data.timestamp_column, spec.data.label
    query = [spec.data.query_column] if spec.model.task == "ranking" else []
    wanted = list(dict.fromkeys([*raw_columns, label, *query, time]))
    frame = read_columns(spec.source_for(keys.TRAINING_SNAPSHOT), wanted, keys.TRAINING_SNAPSHOT)
    frame = frame.sort_values(time, kind="stable").reset_index(drop=True)
    if frame[label].isna().any():
        raise DataInputError(
            f"{keys.TRAINING_SNAPSHOT}: {int(frame[label].isna().sum())} row(s) of "
            f"{spec.source_for(keys.TRAINING_SNAPSHOT).describe()} have no label {label!r}. "
            "Fix: drop unlabelled rows from the training export."
        )
    cut = int(len(frame) * (1 - VALIDATION_SHARE))
    fit, held = frame.iloc[:cut], frame.iloc[cut:]
    params = dict(spec.model.params)
    if spec.model.estimator not in ("logistic_regression", "ridge"):
        params.setdefault("random_state", seed)
    pipeline = build_pipeline(
        spec.features.code,
        spec.features.numeric,
        spec.features.categorical,
        spec.model.estimator,
        params,
        spec.model.task,
    )
    pipeline.fit(fit[raw_columns], fit[label].to_numpy())
    if spec.model.task in ("regression", "multiclass_classification"):
        metrics = task_training_metrics(spec.model.task, pipeline, held[raw_columns], held[label])
        return pipeline, {**metrics, "training_rows": len(fit)}
    if query:
        metrics = ranking_training_metrics(pipeline, held, raw_columns, label, query[0])
        return pipeline, {**metrics, "training_rows": len(fit)}
    scores = pipeline.predict_proba(held[raw_columns])[:, 1]
    truth = held[label].to_numpy()
    metrics = {
        "validation_rows": len(held),
        "training_rows": len(fit),
        "validation_roc_auc": float(roc_auc_score(truth, scores)),
        "validation_log_loss": float(log_loss(truth, np.clip(scores, 1e-12, 1 - 1e-12))),
        "validation_brier": float(brier_score_loss(truth, scores)),
        "positive_rate": float(truth.mean()),
    }
    return pipeline, metrics


def ranking_training_metrics(pipeline, held, raw_columns: list[str], label: str, query: str):
    """NDCG@10 and recall@10 of the expected grade on the held-out (newest) rows."""
    grades = np.asarray(pipeline.classes_, dtype=float)
    scores = pipeline.predict_proba(held[raw_columns]) @ grades
    truth, queries = held[label].to_numpy(dtype=float), held[query].astype(str).to_numpy()
    ndcg, recall = ndcg_at_k(truth, scores, queries, 10), recall_at_k(truth, scores, queries, 10)
    return {
        "validation_rows": len(held),
        "validation_queries": ndcg.support.n,
        "validation_ndcg_at_10": ndcg.value if ndcg.value is not None else float("nan"),
        "validation_recall_at_10": recall.value if recall.value is not None else float("nan"),
    }


def task_training_metrics(task: str, pipeline, x, truth) -> dict[str, float]:
    """Held-out (newest rows) metrics of a regression or multi-class candidate."""
    if task == "regression":
        prediction = pipeline.predict(x)
        return {
            "validation_rows": len(x),
            "validation_mae": float(mean_absolute_error(truth, prediction)),
            "validation_rmse": float(np.sqrt(mean_squared_error(truth, prediction))),
        }
    probabilities = pipeline.predict_proba(x)
    return {
        "validation_rows": len(x),
        "validation_log_loss": float(log_loss(truth, probabilities, labels=pipeline.classes_)),
        "validation_accuracy": float(np.mean(pipeline.predict(x) == truth.to_numpy())),
    }
