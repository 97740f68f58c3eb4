"""Feature code of the demo model, shared by the training path and the serving path.

A feature module names the raw columns it needs (`REQUIRED_COLUMNS`, with their kind) and turns
a raw frame into model features (`compute_features`). The same function runs on training data
in batches and on one serving request at a time, which is what makes training-serving parity
checkable row by row.
"""

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: dict[str, str] = {
    "age": "numeric",
    "annual_income": "numeric",
    "loan_amount": "numeric",
    "credit_limit": "numeric",
    "balance": "numeric",
    "num_late_payments": "numeric",
    "months_employed": "numeric",
    "employment_type": "categorical",
    "home_ownership": "categorical",
    "region": "categorical",
    "channel": "categorical",
    "postal_district": "categorical",
}

NUMERIC = [
    "age",
    "log_income",
    "debt_to_income",
    "utilization",
    "num_late_payments",
    "months_employed",
    "log_loan_amount",
]
CATEGORICAL = ["employment_type", "home_ownership", "region", "channel", "postal_district"]


def _category(values: pd.Series) -> pd.Series:
    # Spelling variants ("Mobile ", "MOBILE") map to one category; missing stays missing.
    return values.astype("string").str.strip().str.lower().astype(object).where(values.notna())


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Model features from raw application fields; one output row per input row."""
    income = raw["annual_income"].astype("float64")
    limit = raw["credit_limit"].astype("float64")
    out = pd.DataFrame(index=raw.index)
    out["age"] = raw["age"].astype("float64")
    out["log_income"] = np.log1p(income.clip(lower=0))
    out["debt_to_income"] = raw["loan_amount"].astype("float64") / income.where(income > 0)
    out["utilization"] = (raw["balance"].astype("float64") / limit.where(limit > 0)).clip(0, 5)
    out["num_late_payments"] = raw["num_late_payments"].astype("float64")
    out["months_employed"] = raw["months_employed"].astype("float64")
    out["log_loan_amount"] = np.log1p(raw["loan_amount"].astype("float64").clip(lower=0))
    for column in CATEGORICAL:
        out[column] = _category(raw[column])
    return out
