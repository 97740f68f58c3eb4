"""The demo features, but `utilization` centred on the batch's mean: a batch-statistics bug.

One row alone always gets utilization 0; in a batch each row gets its distance from the
batch mean. Single requests and batches then disagree, which batch_single_agreement catches.
"""

import pandas as pd

from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.demo.features import compute_features as _demo

__all__ = ["REQUIRED_COLUMNS", "compute_features"]


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Demo features with batch-centred utilization."""
    features = _demo(raw)
    features["utilization"] = features["utilization"] - features["utilization"].mean()
    return features
