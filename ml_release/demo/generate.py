"""Deterministic demo data: a credit-default problem with real structure and mild drift.

`generate(seed)` returns the training snapshot, the evaluation holdout and a serving log; the
same seed always gives the same bytes. The label depends on the features through a logistic
model with segment effects, so a model can learn it and a broken feature visibly hurts.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release.demo.features import compute_features

REGIONS = ["north", "south", "east", "west", "central", "coastal"]
CHANNELS = ["web", "branch", "partner", "mobile"]
EMPLOYMENT = ["salaried", "self_employed", "contractor", "unemployed", "retired"]
HOME = ["rent", "own", "mortgage", "other"]
N_DISTRICTS = 240
LABEL_DELAY_DAYS = 14


@dataclass(frozen=True)
class DemoData:
    """The three demo datasets."""

    training: pd.DataFrame
    evaluation: pd.DataFrame
    serving_log: pd.DataFrame


def _applications(
    rng: np.random.Generator, n: int, start: str, days: int, drift: float = 0.0
) -> pd.DataFrame:
    """Raw applications; `drift` in [0, 1] moves incomes, channel mix and late payments."""
    t = np.sort(rng.uniform(0, days * 86_400, n))
    event_time = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(t, unit="s")
    progress = t / (days * 86_400) * drift
    region = rng.choice(REGIONS, n, p=[0.22, 0.2, 0.18, 0.16, 0.14, 0.10])
    mobile_boost = 0.15 * progress
    channel_p = np.array([0.4, 0.2, 0.15, 0.25])
    u = rng.uniform(size=n)
    channel = np.where(
        u < mobile_boost, "mobile", rng.choice(CHANNELS, n, p=channel_p / channel_p.sum())
    )
    employment = rng.choice(EMPLOYMENT, n, p=[0.55, 0.15, 0.12, 0.08, 0.10])
    age = np.clip(rng.normal(41, 12, n), 18, 90).round().astype("int64")
    age = np.where(employment == "retired", np.maximum(age, 60), age)
    base_income = np.exp(rng.normal(10.8, 0.5, n)) * (1 + 0.04 * progress)
    income = np.where(employment == "unemployed", base_income * 0.25, base_income).round(-1)
    loan = np.exp(rng.normal(9.3, 0.7, n)).round(-1)
    limit = np.exp(rng.normal(8.8, 0.6, n)).round(-2)
    balance = (limit * rng.beta(2, 3, n)).round(2)
    late = rng.poisson(0.4 + 0.6 * (employment == "unemployed") + 0.15 * progress)
    months = np.where(
        employment == "unemployed", 0, rng.gamma(2.0, 30.0, n).round().astype("int64")
    )
    home = rng.choice(HOME, n, p=[0.38, 0.22, 0.35, 0.05])
    district = rng.zipf(1.3, n) % N_DISTRICTS
    return pd.DataFrame(
        {
            "event_time": event_time,
            "age": age,
            "annual_income": income,
            "loan_amount": loan,
            "credit_limit": limit,
            "balance": balance,
            "num_late_payments": late.astype("int64"),
            "months_employed": months.astype("int64"),
            "employment_type": employment,
            "home_ownership": home,
            "region": region,
            "channel": channel,
            "postal_district": [f"d{d:03d}" for d in district],
        }
    )


def _default_probability(raw: pd.DataFrame, district_effect: np.ndarray) -> np.ndarray:
    f = compute_features(raw)
    region_effect = {
        "north": -0.2,
        "south": 0.25,
        "east": 0.0,
        "west": -0.1,
        "central": 0.1,
        "coastal": 0.35,
    }
    channel_effect = {"web": 0.0, "branch": -0.3, "partner": 0.4, "mobile": 0.15}
    employment_effect = {
        "salaried": -0.3,
        "self_employed": 0.1,
        "contractor": 0.2,
        "unemployed": 0.9,
        "retired": -0.1,
    }
    district = raw["postal_district"].str[1:].astype(int).to_numpy()
    logit = (
        -2.3
        + 1.1 * np.clip(f["debt_to_income"].to_numpy(), 0, 3)
        + 1.4 * (f["utilization"].to_numpy() - 0.4)
        + 0.45 * f["num_late_payments"].to_numpy()
        - 0.02 * (f["age"].to_numpy() - 40)
        - 0.5 * (f["log_income"].to_numpy() - 10.8)
        - 0.004 * np.minimum(f["months_employed"].to_numpy(), 120)
        + raw["region"].map(region_effect).to_numpy()
        + raw["channel"].map(channel_effect).to_numpy()
        + raw["employment_type"].map(employment_effect).to_numpy()
        + district_effect[district]
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _labelled(rng: np.random.Generator, raw: pd.DataFrame, effect: np.ndarray, prefix: str):
    p = _default_probability(raw, effect)
    out = raw.copy()
    out.insert(0, "customer_id", [f"{prefix}-{i:07d}" for i in range(len(raw))])
    out["defaulted"] = (rng.uniform(size=len(raw)) < p).astype("int64")
    return out, p


def _serving_log(
    rng: np.random.Generator, raw: pd.DataFrame, p: np.ndarray, labels
) -> pd.DataFrame:
    features = compute_features(raw)
    request_fields = [c for c in raw.columns if c != "event_time"]
    requests = raw[request_fields].to_dict(orient="records")
    # JSON has no NaN: a feature the code could not compute is logged as null.
    logged = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    # The production scorer is noisy but informative: a stand-in until a registered model serves.
    noise = rng.normal(0, 0.6, len(raw))
    score = 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + noise)))
    now = raw["event_time"].max()
    arrived = raw["event_time"] <= now - pd.Timedelta(days=LABEL_DELAY_DAYS)
    return pd.DataFrame(
        {
            "request_id": [f"req-{i:07d}" for i in range(len(raw))],
            "event_time": raw["event_time"],
            "request": [json.dumps(r, default=_json_default) for r in requests],
            "logged_features": [json.dumps(r, default=_json_default) for r in logged],
            "prediction": score.round(6),
            "latency_ms": np.round(rng.lognormal(np.log(12), 0.35, len(raw)), 3),
            "defaulted": pd.array(np.where(arrived, labels, pd.NA), dtype="Int64"),
        }
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value)}")


def generate(
    seed: int = 7, n_training: int = 40_000, n_evaluation: int = 20_000, n_serving: int = 10_000
) -> DemoData:
    """The demo datasets for `seed`; equal seeds give equal data."""
    rng = np.random.default_rng(seed)
    district_effect = rng.normal(0, 0.35, N_DISTRICTS)
    training, _ = _labelled(
        rng, _applications(rng, n_training, "2026-01-01", 181), district_effect, "train"
    )
    evaluation, _ = _labelled(
        rng, _applications(rng, n_evaluation, "2026-07-01", 62), district_effect, "eval"
    )
    serving_raw = _applications(rng, n_serving, "2026-09-01", 30, drift=1.0)
    p = _default_probability(serving_raw, district_effect)
    labels = (rng.uniform(size=n_serving) < p).astype("int64")
    serving_raw.insert(0, "customer_id", [f"live-{i:07d}" for i in range(n_serving)])
    return DemoData(training, evaluation, _serving_log(rng, serving_raw, p, labels))


DATASET_FILES = {
    "training": "training_snapshot.parquet",
    "evaluation": "evaluation_holdout.parquet",
    "serving_log": "serving_log.parquet",
}


def write_demo_data(folder: Path, data: DemoData) -> dict[str, Path]:
    """Write the datasets as Parquet into `folder` (atomically, file by file)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, filename in DATASET_FILES.items():
        target = folder / filename
        partial = folder / f".{filename}.partial"
        getattr(data, name).to_parquet(partial, index=False)
        partial.replace(target)
        written[name] = target
    return written
