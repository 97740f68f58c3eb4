"""The demo features with `debt_to_income` in percent instead of a ratio: a serving-code bug."""

import pandas as pd

from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.demo.features import compute_features as _demo

__all__ = ["REQUIRED_COLUMNS", "compute_features"]


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Demo features, debt_to_income times 100."""
    features = _demo(raw)
    features["debt_to_income"] = features["debt_to_income"] * 100
    return features
