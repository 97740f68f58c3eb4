"""Ranking candidates for the demo and the tests: one as good as production, one that is not.

Both are fitted pipelines from `build_pipeline`, so they travel the real path (publish, safe
loading, scoring, gates):

- `noise_twin`: the spec's model fitted on a bootstrap sample of whole training queries;
  production up to noise (the gates must pass it, or at worst call it inconclusive);
- `segment_inversion`: trained on data whose relevance grades are reversed in the queries of
  one segment (a labelling bug in one market); fine elsewhere, a real NDCG drop there.
"""

import numpy as np
import pandas as pd

from ml_release.feature_code import load_feature_code
from ml_release.model import build_pipeline
from ml_release.spec import ReleaseSpec


def fit_ranker(spec: ReleaseSpec, frame: pd.DataFrame, params: dict | None = None):
    """The spec's pipeline fitted on `frame` (raw rows with the relevance label)."""
    model = build_pipeline(
        spec.features.code,
        spec.features.numeric,
        spec.features.categorical,
        spec.model.estimator,
        {**spec.model.params, **(params or {})},
    )
    raw = list(load_feature_code(spec.features.code).required_columns)
    return model.fit(frame[raw], frame[spec.data.label].to_numpy())


def noise_twin(spec: ReleaseSpec, training: pd.DataFrame, seed: int = 1):
    """The spec's model on a bootstrap resample of the training queries (whole queries)."""
    rng = np.random.default_rng(seed)
    queries = training[spec.data.query_column].unique()
    picked = rng.choice(queries, len(queries))
    groups = training.groupby(spec.data.query_column).indices
    rows = np.concatenate([groups[q] for q in picked])
    return fit_ranker(spec, training.iloc[rows], {"random_state": seed})


def segment_inversion(spec: ReleaseSpec, training: pd.DataFrame, column: str, value: str):
    """The spec's model trained with the grades reversed in the queries where `column == value`."""
    broken = training.copy()
    label = spec.data.label
    rows = broken[column].astype(str) == value
    broken.loc[rows, label] = broken[label].max() - broken.loc[rows, label]
    return fit_ranker(spec, broken, {"random_state": 0})
