"""Feature code of mutated candidates: the team's own feature code, then one injected fault.

A coverage run trains or copies a healthy candidate and points its feature step here. The
base module and the fault come from two environment variables, read at every call, so the
same artifact carries the fault into in-process scoring and into the serving runtime (model
servers inherit the environment):

- `ML_RELEASE_COVERAGE_BASE`: the spec's `features.code` module;
- `ML_RELEASE_COVERAGE_MUTATION`: JSON `{"kind": ..., ...}`, one of
  - `noise`: on a share `rate` of rows, the numeric features replaced by the training medians
    in `fill` (a pipeline that silently fills defaults: a global quality drop);
  - `segment`: the same, only on rows where `column` (raw, or a feature) equals `value`;
  - `delay`: `ms` milliseconds of sleep per call (a latency regression);
  - `memory`: `mb` megabytes allocated on first use and kept (memory growth);
  - `skew`: `feature` multiplied by `factor` (serving code that computes it differently);
  - `batch`: `feature` centred on the batch's mean (answers depend on the batch);
  - `error`: a share `rate` of rows raise an error (the server answers HTTP 500).

Which rows a fault hits is decided by a hash of each row's raw values: the same row is hit
whether it arrives alone or in a batch.
"""

import importlib
import json
import os
import time

import numpy as np
import pandas as pd

BASE_ENV = "ML_RELEASE_COVERAGE_BASE"
MUTATION_ENV = "ML_RELEASE_COVERAGE_MUTATION"

_ballast: list[np.ndarray] = []


def _base():
    """The wrapped feature module, named by the environment at the time of the call.

    Read per call, not at import: this module is imported before a coverage run sets
    `ML_RELEASE_COVERAGE_BASE`, and one process may cover several specs.
    """
    return importlib.import_module(os.environ.get(BASE_ENV) or "ml_release.demo.features")


def __getattr__(name: str):
    """`REQUIRED_COLUMNS`: the wrapped module's, resolved like `_base` (PEP 562)."""
    if name == "REQUIRED_COLUMNS":
        return _base().REQUIRED_COLUMNS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _hit(raw: pd.DataFrame, rate: float) -> np.ndarray:
    """Rows whose raw-value hash falls below `rate` (uniform on [0, 1))."""
    hashed = pd.util.hash_pandas_object(raw[list(_base().REQUIRED_COLUMNS)], index=False).to_numpy()
    return (hashed % 1_000_003) / 1_000_003 < rate


def _blank(features: pd.DataFrame, rows: np.ndarray, fill: dict[str, float]) -> pd.DataFrame:
    """Numeric features of `rows` replaced by training medians: the model sees no signal."""
    for column, value in fill.items():
        if column in features:
            features[column] = features[column].astype("float64").where(~rows, value)
    return features


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The base module's features with the configured fault."""
    features = _base().compute_features(raw)
    mutation = json.loads(os.environ.get(MUTATION_ENV) or "{}")
    kind = mutation.get("kind")
    if kind == "noise":
        features = _blank(features, _hit(raw, mutation["rate"]), mutation["fill"])
    elif kind == "segment":
        column = mutation["column"]
        source = raw if column in raw else features  # raw, or derived by the feature code
        in_segment = source[column].astype(str).to_numpy() == mutation["value"]
        rows = in_segment & _hit(raw, mutation["rate"])
        features = _blank(features, rows, mutation["fill"])
    elif kind == "delay":
        time.sleep(mutation["ms"] / 1000)
    elif kind == "memory":
        if not _ballast:
            _ballast.append(np.ones(int(mutation["mb"] * 2**20 // 8)))
    elif kind == "skew":
        features[mutation["feature"]] = features[mutation["feature"]] * mutation["factor"]
    elif kind == "error":
        failing = int(_hit(raw, mutation["rate"]).sum())
        if failing:
            raise ValueError(f"injected fault: {failing} of {len(raw)} rows refused")
    elif kind == "batch":
        column = features[mutation["feature"]].astype("float64")
        features[mutation["feature"]] = column - column.mean()
    return features
