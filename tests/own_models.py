"""Models a team trains with its own code on the demo data's raw columns (no ml-release code)."""

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from ml_release.demo.features import REQUIRED_COLUMNS

RAW = list(REQUIRED_COLUMNS)
CATEGORICAL = [c for c, kind in REQUIRED_COLUMNS.items() if kind == "categorical"]


def encoder() -> ColumnTransformer:
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    return ColumnTransformer(
        [("categories", codes, CATEGORICAL)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def native_categorical(training, regression: bool = False):
    """HistGradientBoosting with native categorical features, on the raw columns."""
    kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    model = make_pipeline(
        encoder(), kind(categorical_features=CATEGORICAL, max_iter=40, random_state=0)
    )
    target = training["annual_income"] if regression else training["defaulted"]
    x = training[RAW].drop(columns=["annual_income"]) if regression else training[RAW]
    return model.fit(x, target)


def boosted(training, library: str):
    """XGBoost's or LightGBM's classifier through its scikit-learn interface."""
    if library == "xgboost":
        from xgboost import XGBClassifier

        estimator = XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1)
    else:
        from lightgbm import LGBMClassifier

        estimator = LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1, random_state=0)
    return make_pipeline(encoder(), estimator).fit(training[RAW], training["defaulted"])
