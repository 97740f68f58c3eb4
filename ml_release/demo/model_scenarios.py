"""Model-side scenarios: candidates that are wrong in the ways releases go wrong.

Each returns a fitted pipeline built only from the types the artifact loader allows, so it
travels through the real path (publish, sensor or `--candidate`, safe loading, scoring, gates):

- `noise_twin`: the same model fitted on a bootstrap sample of the data; identical to the
  baseline up to noise (the gates must pass it);
- `miscalibrated`: class-weighted training inflates probabilities; ranking (AUC) barely moves,
  calibration gets much worse;
- `segment_regression`: trained on data whose labels are shuffled in one segment: fine
  elsewhere, close to random in that segment;
- `nan_outputs`: a fitted gradient-boosting model with NaN in some leaves, so some rows
  score NaN.
"""

import copy

import numpy as np
import pandas as pd

from ml_release.model import build_pipeline
from ml_release.spec import ReleaseSpec


def _fit(spec: ReleaseSpec, frame: pd.DataFrame, estimator: str, params: dict, raw: list[str]):
    model = build_pipeline(
        spec.features.code, spec.features.numeric, spec.features.categorical, estimator, params
    )
    return model.fit(frame[raw], frame[spec.data.label].to_numpy())


def noise_twin(spec: ReleaseSpec, training: pd.DataFrame, raw: list[str], seed: int = 1):
    """The spec's model on a bootstrap resample of the training rows."""
    rng = np.random.default_rng(seed)
    sample = training.iloc[rng.integers(0, len(training), len(training))]
    return _fit(spec, sample, spec.model.estimator, dict(spec.model.params), raw)


def miscalibrated(spec: ReleaseSpec, training: pd.DataFrame, raw: list[str]):
    """A logistic regression with balanced class weights: same ranking, inflated scores."""
    return _fit(spec, training, "logistic_regression", {"class_weight": "balanced"}, raw)


def segment_regression(
    spec: ReleaseSpec,
    training: pd.DataFrame,
    raw: list[str],
    column: str,
    value: str,
    seed: int = 2,
):
    """Gradient boosting trained with the labels of one segment shuffled."""
    rng = np.random.default_rng(seed)
    broken = training.copy()
    rows = broken[column].astype(str).str.strip().str.lower() == value
    broken.loc[rows, spec.data.label] = rng.permutation(broken.loc[rows, spec.data.label].values)
    params = {"max_iter": 300, "max_depth": 4, "learning_rate": 0.1, "random_state": seed}
    return _fit(spec, broken, "hist_gradient_boosting", params, raw)


def nan_outputs(model, leaves: int = 1):
    """A copy of a fitted gradient-boosting pipeline with NaN in some leaves of its first tree.

    Rows that reach those leaves score NaN, the others are unchanged: the failure a corrupted
    or mis-converted model file produces.
    """
    broken = copy.deepcopy(model)
    nodes = broken.named_steps["estimator"]._predictors[0][0].nodes
    for leaf in np.flatnonzero(nodes["is_leaf"])[:leaves]:
        nodes["value"][leaf] = np.nan
    return broken
