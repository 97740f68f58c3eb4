"""Deterministic demo data for the ranking example: search queries and the documents shown.

Every query has 10 to 50 candidate documents with a graded relevance 0-3. Relevance depends on
the features through a latent utility with real structure: text match, title match, quality and
popularity help; stale documents hurt more for informational queries; long documents hurt on
mobile; a navigational query has one target document. Query-level fields (`market`, `device`,
`query_type`) are the segments, constant within a query. Some queries have no relevant
document at all, as in real logs. The same seed always gives the same bytes.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.demo.generate import DATASET_FILES, DemoData, write_demo_data
from ml_release.demo.ranking.features import compute_features
from ml_release.home import demo_data_dir
from ml_release.spec import ReleaseSpec

MARKETS = ["us", "uk", "de", "fr", "jp"]
DEVICES = ["desktop", "mobile", "tablet"]
QUERY_TYPES = ["navigational", "informational", "transactional"]
FRESHNESS_WEIGHT = {"navigational": 0.05, "informational": 0.45, "transactional": 0.2}
GRADE_CUTS = [2.7, 3.5, 4.2]  # latent utility -> grades 0 | 1 | 2 | 3
FOLDER = "ranking"
FEATURE_CODE = "ml_release.demo.ranking.features"
DATASETS = (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG)


def _queries(rng: np.random.Generator, n: int, prefix: str, start: str, days: int):
    seconds = np.sort(rng.uniform(0, days * 86_400, n))
    return pd.DataFrame(
        {
            "query_id": [f"{prefix}-q{i:05d}" for i in range(n)],
            "event_time": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "market": rng.choice(MARKETS, n, p=[0.3, 0.2, 0.2, 0.15, 0.15]),
            "device": rng.choice(DEVICES, n, p=[0.45, 0.4, 0.15]),
            "query_type": rng.choice(QUERY_TYPES, n, p=[0.2, 0.5, 0.3]),
            "query_length": rng.integers(1, 9, n),
            "results": rng.integers(10, 51, n),
            "offset": rng.normal(0, 0.45, n),
        }
    )


def _results(rng: np.random.Generator, queries: pd.DataFrame, prefix: str) -> pd.DataFrame:
    rows = queries.loc[queries.index.repeat(queries["results"])].reset_index(drop=True)
    n = len(rows)
    text = rng.beta(2, 5, n)
    rows["text_match"] = text.round(4)
    rows["title_match"] = (rng.uniform(size=n) < 0.1 + 0.6 * text).astype("int64")
    rows["freshness_days"] = rng.exponential(120, n).round().astype("int64")
    rows["popularity"] = rng.poisson(np.exp(rng.normal(2.0, 1.0, n))).astype("int64")
    rows["doc_quality"] = rng.beta(4, 2, n).round(4)
    rows["doc_length"] = np.exp(rng.normal(6.5, 0.6, n)).round().astype("int64")
    first = ~rows["query_id"].duplicated()
    navigational = (rows["query_type"] == "navigational").to_numpy()
    target = first.to_numpy() & navigational  # the navigational target: one per query
    f = compute_features(rows)
    utility = (
        3.2 * f["text_match"]
        + 0.9 * f["title_match"]
        + 1.4 * f["doc_quality"]
        + 0.3 * f["log_popularity"]
        - rows["query_type"].map(FRESHNESS_WEIGHT) * f["log_freshness"]
        - 0.8 * (rows["device"] == "mobile") * (f["log_doc_length"] - 6.5)
        + 0.08 * f["query_length"]
        + rows["offset"]
        + rng.normal(0, 0.45, n)
    ).to_numpy()
    utility = np.where(target, utility + 2.5, utility)
    rows["relevance"] = np.digitize(utility, GRADE_CUTS).astype("int64")
    rows.insert(0, "doc_id", [f"{prefix}-d{i:07d}" for i in range(n)])
    # Shuffle results within each query: the row order must not reveal the grade.
    order = np.lexsort((rng.uniform(size=n), rows["query_id"].to_numpy()))
    return rows.iloc[order].drop(columns=["results", "offset"]).reset_index(drop=True)


def _serving_log(rng: np.random.Generator, raw: pd.DataFrame) -> pd.DataFrame:
    features = compute_features(raw)
    fields = [c for c in raw.columns if c not in ("event_time", "relevance", "doc_id")]
    requests = raw[fields].to_dict(orient="records")
    logged = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    return pd.DataFrame(
        {
            "request_id": [f"req-{i:07d}" for i in range(len(raw))],
            "event_time": raw["event_time"],
            "request": [json.dumps(r, default=_plain) for r in requests],
            "logged_features": [json.dumps(r, default=_plain) for r in logged],
            "prediction": rng.uniform(0, 3, len(raw)).round(6),
            "latency_ms": np.round(rng.lognormal(np.log(8), 0.3, len(raw)), 3),
            # Graded relevance arrives from human judges, not from live traffic.
            "relevance": pd.array([pd.NA] * len(raw), dtype="Int64"),
        }
    )


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value)}")


def generate(
    seed: int = 7, n_training: int = 600, n_evaluation: int = 500, n_serving: int = 40
) -> DemoData:
    """The ranking demo datasets (sizes in queries) for `seed`; equal seeds give equal data."""
    rng = np.random.default_rng(seed)
    training = _results(rng, _queries(rng, n_training, "train", "2026-01-01", 181), "train")
    evaluation = _results(rng, _queries(rng, n_evaluation, "eval", "2026-07-01", 62), "eval")
    live = _results(rng, _queries(rng, n_serving, "live", "2026-09-01", 30), "live")
    return DemoData(training, evaluation, _serving_log(rng, live))


def write_ranking_data(folder: Path, data: DemoData) -> dict[str, Path]:
    """Write the ranking datasets as Parquet into `folder` (atomically, file by file)."""
    return write_demo_data(folder, data)


def ensure_demo_data(spec: ReleaseSpec) -> Path | None:
    """Write the demo data a spec on the demo's feature code reads, when it is not there yet.

    Returns the folder written, or None when nothing was needed (or the spec reads other data:
    missing sources of a user's own spec are reported by the usual source checks).
    """
    if spec.features is None or spec.features.code != FEATURE_CODE:
        return None
    folder = (demo_data_dir() / FOLDER).resolve()
    paths = [Path(spec.source_for(d).path or "") for d in DATASETS]
    if all(p.exists() for p in paths) or any(p.parent != folder for p in paths):
        return None
    write_ranking_data(folder, generate())
    return folder


__all__ = ["DATASET_FILES", "FOLDER", "ensure_demo_data", "generate", "write_ranking_data"]
