"""The team's own training script: a scikit-learn pipeline on the raw columns, published.

    python examples/regression/train.py good   # or: bad

`good` is a ridge regression on the standardized measurements (sex one-hot encoded). `bad` is
the same pipeline trained on an export with a labelling bug: the targets of patients aged 50
and over are mirrored around the mean, so the model is wrong for them.
"""

import sys
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from examples.common import data_folder
from examples.regression.features import NUMERIC, REQUIRED_COLUMNS
from ml_release import publish_candidate
from ml_release.spec import load_spec

SPEC = Path(__file__).with_name("release.yaml")
LABEL = "progression"


def fit(training: pd.DataFrame, labels: pd.Series):
    """The team's pipeline, fitted on raw rows."""
    columns = ColumnTransformer(
        [
            ("measurements", StandardScaler(), NUMERIC),
            ("sex", OneHotEncoder(drop="if_binary"), ["sex"]),
        ]
    )
    return make_pipeline(columns, Ridge(alpha=1.0)).fit(training[list(REQUIRED_COLUMNS)], labels)


def train(kind: str):
    """Fit the `good` or `bad` model on the training snapshot."""
    training = pd.read_parquet(data_folder("regression") / "training_snapshot.parquet")
    labels = training[LABEL].astype(float)
    if kind == "bad":
        older = training["age"] >= 50
        labels = labels.where(~older, 2 * labels.mean() - labels)
    return fit(training, labels)


def main(kind: str, spec_path: Path = SPEC):
    """Train and publish; returns the artifact folder in incoming/."""
    spec = load_spec(spec_path)
    return publish_candidate(train(kind), spec, version=f"ridge-{kind}")


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "good"))
