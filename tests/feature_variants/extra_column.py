"""The demo features plus a raw column production clients do not send yet (`credit_score`)."""

import pandas as pd

from ml_release.demo.features import REQUIRED_COLUMNS as _DEMO
from ml_release.demo.features import compute_features as _demo

REQUIRED_COLUMNS = {**_DEMO, "credit_score": "numeric"}


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Demo features, with utilization adjusted by the credit score."""
    features = _demo(raw)
    score = pd.to_numeric(raw["credit_score"], errors="coerce").fillna(600).to_numpy()
    features["utilization"] = features["utilization"] + (600 - score) / 1000
    return features
