"""Scenario injectors: broken variants of any dataset, for tests and the demo.

Each injector takes a DataFrame and returns a new one with exactly one kind of damage, chosen
deterministically from `seed`. They model what reaches release pipelines in practice: a renamed
or retyped column, a null flood, unseen categories, out-of-range values, a distribution shift,
and training-serving skew where the serving path computes one feature differently.
"""

import json
from collections.abc import Callable

import numpy as np
import pandas as pd


def _rows(df: pd.DataFrame, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=len(df)) < rate


def rename_column(df: pd.DataFrame, column: str, new_name: str | None = None) -> pd.DataFrame:
    """`column` renamed (by default to a plausible typo of itself)."""
    return df.rename(columns={column: new_name or column.replace("_", "", 1)})


def change_dtype(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """`column`'s numbers sent as strings, as a JSON or CSV pipeline with a bug does."""
    out = df.copy()
    out[column] = out[column].astype("string")
    return out


def null_flood(df: pd.DataFrame, column: str, rate: float = 0.4, seed: int = 0) -> pd.DataFrame:
    """A share `rate` of `column` set to null."""
    out = df.copy()
    mask = _rows(df, rate, seed)
    out[column] = out[column].astype(object if out[column].dtype == object else "float64")
    out.loc[mask, column] = None if out[column].dtype == object else np.nan
    return out


def unseen_categories(
    df: pd.DataFrame, column: str, rate: float = 0.2, value: str = "crypto_exchange", seed: int = 1
) -> pd.DataFrame:
    """A share `rate` of categorical `column` replaced by a category the reference never saw."""
    out = df.copy()
    out.loc[_rows(df, rate, seed), column] = value
    return out


def out_of_range(
    df: pd.DataFrame, column: str, rate: float = 0.05, factor: float = 25.0, seed: int = 2
) -> pd.DataFrame:
    """A share `rate` of numeric `column` multiplied by `factor` (a units or scaling bug)."""
    out = df.copy()
    out[column] = out[column].astype("float64")
    mask = _rows(df, rate, seed)
    out.loc[mask, column] = out.loc[mask, column] * factor
    return out


def distribution_shift(
    df: pd.DataFrame, column: str, strength: float = 1.0, seed: int = 3
) -> pd.DataFrame:
    """Numeric: shifted by `strength` standard deviations. Categorical: mass moved to one value."""
    out = df.copy()
    values = out[column]
    if pd.api.types.is_numeric_dtype(values):
        out[column] = values.astype("float64") + strength * float(values.std())
    else:
        rarest = values.value_counts().index[-1]
        out.loc[_rows(df, min(0.9, 0.5 * strength), seed), column] = rarest
    return out


def training_serving_skew(
    log: pd.DataFrame,
    feature: str,
    transform: Callable[[float], float] = lambda v: v * 1000.0,
    rate: float = 1.0,
    column: str = "logged_features",
    seed: int = 4,
) -> pd.DataFrame:
    """The serving path computes `feature` differently: `transform` applied to logged values."""
    out = log.copy()
    mask = _rows(log, rate, seed)

    def skew(text: str) -> str:
        row = json.loads(text)
        if row.get(feature) is not None:
            row[feature] = transform(row[feature])
        return json.dumps(row)

    out.loc[mask, column] = out.loc[mask, column].map(skew)
    return out


SCENARIOS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "null_flood": lambda df: null_flood(df, "annual_income"),
    "unseen_categories": lambda df: unseen_categories(df, "employment_type"),
    "out_of_range": lambda df: out_of_range(df, "balance"),
    "distribution_shift": lambda df: distribution_shift(df, "loan_amount"),
    "renamed_column": lambda df: rename_column(df, "annual_income", "annual_incme"),
    "changed_dtype": lambda df: change_dtype(df, "age"),
}
"""Named scenarios for the evaluation holdout (raw fields), used by `ml-release demo`."""
