"""Feature code of the regression example (scikit-learn's diabetes data, unscaled).

The model takes the raw columns directly; this module declares them and adds the two segment
columns the gates slice by: `age_band` and `sex_code`.
"""

import pandas as pd

NUMERIC = ["age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
REQUIRED_COLUMNS: dict[str, str] = {**dict.fromkeys(NUMERIC, "numeric"), "sex": "numeric"}


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw measurements as floats, plus `age_band` and `sex_code`; one row per input row."""
    out = raw[[*NUMERIC, "sex"]].astype("float64")
    out["age_band"] = pd.Series("under_50", index=raw.index).where(out["age"] < 50, "50_plus")
    out["sex_code"] = "sex_" + out["sex"].round().astype("Int64").astype(str)
    return out.drop(columns=["sex"])
