"""The trainable model: the shared feature code, preprocessing and an estimator in one pipeline.

The pipeline starts with `FeatureTransformer`, which runs the feature module's
`compute_features`, so a fitted model takes *raw* rows (the module's `REQUIRED_COLUMNS`) — the
same input the serving path receives — and training and serving cannot drift apart.
"""

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_release.feature_code import load_feature_code

ESTIMATORS: dict[str, type] = {
    "logistic_regression": LogisticRegression,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "random_forest": RandomForestClassifier,
}
REGRESSORS: dict[str, type] = {
    "ridge": Ridge,
    "hist_gradient_boosting": HistGradientBoostingRegressor,
    "random_forest": RandomForestRegressor,
}
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 1000},
    "ridge": {},
    "hist_gradient_boosting": {},
    "random_forest": {"n_estimators": 100, "n_jobs": 1},
}
# Estimators that take only dense input; the others get the one-hot columns sparse (a few
# hundred columns of mostly zeros: dense, they cost more to build than the model to score).
DENSE_ONLY = {"hist_gradient_boosting"}
# A loaded artifact carries `code` as data: only a dotted module path may reach the importer.
MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """Raw rows in, model features out, through the shared feature module.

    Args:
        code: Import path of the feature module, e.g. "ml_release.demo.features".
        columns: Feature columns to output, numeric first, then categorical.
        as_array: Output the columns as one NumPy object array instead of a frame, for a
            `ColumnTransformer` that selects them by position (`build_pipeline`'s). Each of
            scikit-learn's steps checks a frame column by column on every call: for one
            serving request that was most of the model's time (7 ms against 5 for the demo
            pipeline, the predictions identical; docs/decisions.md item 45).
    """

    def __init__(self, code: str, columns: list[str], as_array: bool = False):
        self.code = code
        self.columns = columns
        self.as_array = as_array

    def __setstate__(self, state: dict) -> None:
        # Artifacts saved before `as_array` existed hand their ColumnTransformer a frame.
        super().__setstate__({"as_array": False, **state})

    def fit(self, X: pd.DataFrame, y: Any = None) -> "FeatureTransformer":
        """Nothing to learn: the feature code is stateless."""
        return self

    def transform(self, X: pd.DataFrame) -> "pd.DataFrame | np.ndarray":
        """The feature columns computed from the raw frame `X`, row for row."""
        if not isinstance(self.code, str) or MODULE_PATH.fullmatch(self.code) is None:
            raise ValueError(
                f"FeatureTransformer.code {self.code!r} is not a dotted module path such as "
                "'ml_release.demo.features'; rebuild the model with build_pipeline"
            )
        features = load_feature_code(self.code).compute(X)
        if not self.as_array:
            return features[list(self.columns)]
        # Column by column into one array: a fifth of selecting a frame, then converting it.
        out = np.empty((len(features), len(self.columns)), dtype=object)
        for position, column in enumerate(self.columns):
            out[:, position] = features[column].to_numpy(dtype=object)
        return out


def build_pipeline(
    code: str,
    numeric: list[str],
    categorical: list[str],
    estimator: str,
    params: dict[str, Any] | None = None,
    task: str = "binary_classification",
) -> Pipeline:
    """An unfitted pipeline: feature code → imputation and one-hot encoding → estimator.

    Args:
        code: Import path of the feature module.
        numeric: Numeric feature columns (median-imputed).
        categorical: Categorical feature columns (imputed as "missing", one-hot encoded; levels
            seen fewer than 20 times and unseen levels share one "infrequent" column).
        estimator: One of `ESTIMATORS` (`REGRESSORS` for `task` regression).
        params: Estimator parameters; they override the defaults.
        task: The spec's `model.task`: regression picks the regressor of the same name.

    Raises:
        ValueError: `estimator` is not a known name for `task`.
    """
    choices = REGRESSORS if task == "regression" else ESTIMATORS
    if estimator not in choices:
        raise ValueError(
            f"unknown estimator {estimator!r} for model.task {task}: use one of "
            f"{', '.join(sorted(choices))}"
        )
    encoder = OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        min_frequency=20,
        sparse_output=estimator not in DENSE_ONLY,
    )
    # The feature step hands over an array, numeric columns first: selected by position.
    positions = list(range(len(numeric) + len(categorical)))
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                positions[: len(numeric)],
            ),
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), encoder),
                positions[len(numeric) :],
            ),
        ]
    )
    model = choices[estimator](**{**DEFAULT_PARAMS[estimator], **(params or {})})
    return Pipeline(
        [
            ("features", FeatureTransformer(code, [*numeric, *categorical], as_array=True)),
            ("preprocess", preprocess),
            ("estimator", model),
        ]
    )
