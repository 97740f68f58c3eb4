"""Feature code of the demo ranking model (search results), shared by training and serving.

Each row is one document shown for one query; query-level fields (`query_type`, `device`,
`market`, `query_length`) repeat on every row of their query.
"""

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: dict[str, str] = {
    "text_match": "numeric",
    "title_match": "numeric",
    "freshness_days": "numeric",
    "popularity": "numeric",
    "doc_quality": "numeric",
    "doc_length": "numeric",
    "query_length": "numeric",
    "query_type": "categorical",
    "device": "categorical",
    "market": "categorical",
}

NUMERIC = [
    "text_match",
    "title_match",
    "log_freshness",
    "log_popularity",
    "doc_quality",
    "log_doc_length",
    "query_length",
]
CATEGORICAL = ["query_type", "device", "market"]


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Model features from raw result fields; one output row per input row."""
    out = pd.DataFrame(index=raw.index)
    out["text_match"] = raw["text_match"].astype("float64")
    out["title_match"] = raw["title_match"].astype("float64")
    out["log_freshness"] = np.log1p(raw["freshness_days"].astype("float64").clip(lower=0))
    out["log_popularity"] = np.log1p(raw["popularity"].astype("float64").clip(lower=0))
    out["doc_quality"] = raw["doc_quality"].astype("float64")
    out["log_doc_length"] = np.log1p(raw["doc_length"].astype("float64").clip(lower=0))
    out["query_length"] = raw["query_length"].astype("float64")
    for column in CATEGORICAL:
        values = raw[column]
        out[column] = values.astype("string").str.strip().str.lower().astype(object)
        out[column] = out[column].where(values.notna())
    return out
