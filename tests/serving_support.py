"""Helpers shared by the tests that start model servers: a small artifact store and options."""

from pathlib import Path

import numpy as np
import pandas as pd

from ml_release.artifacts import writer
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.model import build_pipeline
from ml_release.serving.environment import feature_code_paths, runtime_python
from ml_release.serving.server import ServerOptions
from ml_release.store import store_artifact
from tests.conftest import RUNTIME_DIR

MODEL = "credit_default"
DEMO_CODE = "ml_release.demo.features"


class ModelStore:
    """Fits demo-data models and stores them as artifacts under `root/<model>/<version>`."""

    def __init__(self, root: Path, training: pd.DataFrame):
        writer.current_code_version = lambda: None  # no git call per artifact
        self.root, self.staging = root, root.parent / f"{root.name}-staging"
        self.raw = training[list(REQUIRED_COLUMNS)]
        self.y = training["defaulted"].to_numpy()

    def fit(
        self, code: str, estimator: str, params: dict, x=None, labels: np.ndarray | None = None
    ):
        """A fitted pipeline on the training rows (or `x`, `labels`)."""
        pipeline = build_pipeline(code, NUMERIC, CATEGORICAL, estimator, params)
        return pipeline.fit(self.raw if x is None else x, self.y if labels is None else labels)

    def publish(self, version: str, model, features=REQUIRED_COLUMNS) -> Path:
        """Write and store `model`; returns its artifact folder."""
        written = writer.write_artifact(
            model, self.staging, name=MODEL, version=version, features=features
        )
        return store_artifact(written, self.root, move=True)[1]


def server_options(app: Path, **limits) -> ServerOptions:
    """The shared serving runtime, with the tests folder importable for the feature variants."""
    return ServerOptions(
        python=runtime_python(RUNTIME_DIR),
        extra_paths=feature_code_paths("tests.feature_variants", app),
        **limits,
    )


def ref(version: str, folder: Path):
    """A stored artifact as the serving code takes it: version, folder, registry digest."""
    from ml_release.artifacts import read_manifest
    from ml_release.subjects import ModelRef

    return ModelRef(version, folder, read_manifest(folder).sha256)
