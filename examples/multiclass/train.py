"""The team's own training script: a scikit-learn pipeline on the raw pixels, published.

    python -m examples.multiclass.train good   # or: bad

`good` is a multinomial logistic regression on the scaled pixels. `bad` is the same pipeline
trained on an export where the labels of heavily inked images were mixed up (each 3 read as 8,
each 8 as 3, each 1 as 7): wrong exactly where the ink is heavy.
"""

import sys
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from examples.common import data_folder
from examples.multiclass.features import PIXELS, compute_features
from ml_release import publish_candidate
from ml_release.spec import load_spec

SPEC = Path(__file__).with_name("release.yaml")
LABEL = "digit"
MIX_UP = {3: 8, 8: 3, 1: 7}


def train(kind: str):
    """Fit the `good` or `bad` model on the training snapshot."""
    training = pd.read_parquet(data_folder("multiclass") / "training_snapshot.parquet")
    labels = training[LABEL]
    if kind == "bad":
        heavy = compute_features(training[PIXELS])["stroke"] == "heavy"
        labels = labels.where(~heavy, labels.replace(MIX_UP))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    return model.fit(training[PIXELS], labels)


def main(kind: str, spec_path: Path = SPEC):
    """Train and publish; returns the artifact folder in incoming/."""
    return publish_candidate(train(kind), load_spec(spec_path), version=f"logistic-{kind}")


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "good"))
