"""Training a candidate from the release spec: the pipeline around the shared feature code.

The candidate is trained on the raw training snapshot through `FeatureTransformer`, i.e. the
same feature code that built `training_features`, so one artifact serves raw requests. The
newest 20 % of the snapshot (by timestamp) is held out for the training metrics.
"""

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from ml_release import keys
from ml_release.feature_code import load_feature_code
from ml_release.identifiers import quote
from ml_release.model import build_pipeline
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

VALIDATION_SHARE = 0.2


def train_candidate(warehouse: Warehouse, spec: ReleaseSpec, seed: int = 0):
    """Fit the spec's pipeline; returns (pipeline, training metrics)."""
    code = load_feature_code(spec.features.code)
    raw_columns = list(code.required_columns)
    time, label = spec.data.timestamp_column, spec.data.label
    with warehouse.connect() as connection:
        frame = connection.sql(
            f"SELECT {', '.join(quote(c) for c in [*raw_columns, label])} "
            f"FROM {quote(keys.TRAINING_SNAPSHOT)} ORDER BY {quote(time)}"
        ).df()
    cut = int(len(frame) * (1 - VALIDATION_SHARE))
    fit, held = frame.iloc[:cut], frame.iloc[cut:]
    params = dict(spec.model.params)
    if spec.model.estimator != "logistic_regression":
        params.setdefault("random_state", seed)
    pipeline = build_pipeline(
        spec.features.code,
        spec.features.numeric,
        spec.features.categorical,
        spec.model.estimator,
        params,
    )
    pipeline.fit(fit[raw_columns], fit[label].to_numpy())
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
