"""The demo features, but the serving code refuses a negative income: one bad request errors."""

import pandas as pd

from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.demo.features import compute_features as _demo

__all__ = ["REQUIRED_COLUMNS", "compute_features"]


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Demo features; raises when any row has a negative income."""
    if (pd.to_numeric(raw["annual_income"], errors="coerce") < 0).any():
        raise ValueError("income must not be negative")
    return _demo(raw)
