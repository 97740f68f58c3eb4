"""Feature code of the multi-class example (scikit-learn's 8x8 handwritten digits).

The model takes the 64 raw pixel columns directly; this module declares them and adds the
segment the gates slice by: `stroke`, how much ink a digit has (light, medium, heavy; the
cut-offs are the terciles of the whole data set, fixed here so training and serving agree).
"""

import pandas as pd

PIXELS = [f"pixel_{row}_{column}" for row in range(8) for column in range(8)]
REQUIRED_COLUMNS: dict[str, str] = dict.fromkeys(PIXELS, "numeric")
INK_CUTS = (295.0, 329.0)


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The pixels as floats, plus `stroke`; one row per input row."""
    out = raw[PIXELS].astype("float64")
    ink = out.sum(axis=1)
    out["stroke"] = "medium"
    out.loc[ink < INK_CUTS[0], "stroke"] = "light"
    out.loc[ink >= INK_CUTS[1], "stroke"] = "heavy"
    return out
