"""A team's own training code: three models on the raw columns, published as they are.

    python examples/own-pipeline/train.py hist_gradient_boosting   # or lightgbm, xgboost_bad

- `hist_gradient_boosting`: scikit-learn's HistGradientBoostingClassifier with native
  categorical features (an OrdinalEncoder in a ColumnTransformer, pandas output);
- `lightgbm`: LightGBM's LGBMClassifier on the same encoding;
- `xgboost_bad`: XGBoost's XGBClassifier trained on an export whose labels were inverted for
  one channel (partner): it ranks that channel's applicants backwards.
No ml-release code is in the models: `publish_candidate` takes them as they are.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root

from ml_release import publish_candidate
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.home import release_home
from ml_release.spec import load_spec

SPEC = Path(__file__).with_name("release.yaml")
CATEGORICAL = [c for c, kind in REQUIRED_COLUMNS.items() if kind == "categorical"]
NUMERIC = [c for c, kind in REQUIRED_COLUMNS.items() if kind == "numeric"]
KINDS = ("hist_gradient_boosting", "lightgbm", "xgboost_bad")


def encoder() -> ColumnTransformer:
    """Categories to integer codes (unknown and missing: NaN), numbers passed through."""
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    return ColumnTransformer(
        [("categories", codes, CATEGORICAL)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def model(kind: str):
    """The unfitted pipeline of `kind`."""
    if kind == "hist_gradient_boosting":
        estimator = HistGradientBoostingClassifier(
            categorical_features=CATEGORICAL, max_iter=150, learning_rate=0.08, random_state=0
        )
    elif kind == "lightgbm":
        from lightgbm import LGBMClassifier

        estimator = LGBMClassifier(
            n_estimators=150, learning_rate=0.05, num_leaves=15, verbose=-1, random_state=0
        )
    else:
        from xgboost import XGBClassifier

        estimator = XGBClassifier(n_estimators=150, learning_rate=0.08, max_depth=4, n_jobs=1)
    return make_pipeline(encoder(), estimator)


def train(kind: str):
    """Fit `kind` on the training snapshot's raw columns."""
    folder = release_home() / "examples" / "own-pipeline"
    training = pd.read_parquet(folder / "training_snapshot.parquet")
    labels = training["defaulted"].to_numpy()
    if kind == "xgboost_bad":
        partner = training["channel"].to_numpy() == "partner"
        labels = np.where(partner, 1 - labels, labels)
    return model(kind).fit(training[list(REQUIRED_COLUMNS)], labels)


def main(kind: str, spec_path: Path = SPEC):
    """Train and publish `kind`; returns the artifact folder in incoming/."""
    return publish_candidate(train(kind), load_spec(spec_path), version=kind.replace("_", "-"))


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else KINDS[0]))
