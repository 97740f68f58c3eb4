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


SMALL_BATCH = 32  # rows: a serving request; below this a plain loop beats factorizing


def _category(values: pd.Series) -> np.ndarray:
    # Spelling variants ("Mobile ", "MOBILE") map to one category; missing stays missing.
    if len(values) < SMALL_BATCH:
        return np.array(
            [np.nan if pd.isna(v) else str(v).strip().lower() for v in values.to_numpy()],
            dtype=object,
        )
    # A batch holds few distinct values: each is spelled out once (7x faster at 100k rows).
    codes, distinct = pd.factorize(values)  # missing values get code -1
    names = np.array([np.nan, *(str(v).strip().lower() for v in distinct)], dtype=object)
    return names[codes + 1]


def _number(raw: pd.DataFrame, column: str) -> np.ndarray:
    return raw[column].to_numpy(dtype="float64", na_value=np.nan)


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Model features from raw application fields; one output row per input row.

    Plain NumPy, one frame built at the end: a serving request is one row, and pandas
    operations column by column would cost more than the model itself.
    """
    income = _number(raw, "annual_income")
    limit = _number(raw, "credit_limit")
    loan = _number(raw, "loan_amount")
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "age": _number(raw, "age"),
            "log_income": np.log1p(np.maximum(income, 0)),
            "debt_to_income": loan / np.where(income > 0, income, np.nan),
            "utilization": np.clip(
                _number(raw, "balance") / np.where(limit > 0, limit, np.nan), 0, 5
            ),
            "num_late_payments": _number(raw, "num_late_payments"),
            "months_employed": _number(raw, "months_employed"),
            "log_loan_amount": np.log1p(np.maximum(loan, 0)),
        }
    columns.update({column: _category(raw[column]) for column in CATEGORICAL})
    return pd.DataFrame(columns, index=raw.index)
