"""What every failure mode starts from: the spec, its data read once, and the healthy models."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_release.feature_code import load_feature_code
from ml_release.model import build_pipeline
from ml_release.spec import ReleaseSpec


@dataclass
class Bench:
    """What every mode starts from: the spec, its data, and the healthy models."""

    spec: ReleaseSpec
    training: pd.DataFrame
    evaluation: pd.DataFrame
    serving_log: pd.DataFrame
    raw_columns: dict[str, str]  # raw column -> "numeric" | "categorical"
    control: Any  # the healthy candidate: the spec's model on 90% of the training rows
    _medians: dict[str, float] | None = field(default=None, repr=False)
    _segment: tuple[str, str] | None = field(default=None, repr=False)

    def numeric_raw(self) -> str:
        """The raw numeric column the data modes damage: the one with the most distinct values.

        A continuous column: on an integer-valued one (an age) a shift of a fraction of a unit
        moves every value off its integer, which the drift tests rightly see at any size.
        """
        numeric = [c for c, kind in self.raw_columns.items() if kind == "numeric"]
        return max(numeric, key=lambda c: (self.evaluation[c].nunique(), -numeric.index(c)))

    def categorical_raw(self) -> str:
        """The raw categorical column the data modes damage (not a segment column if possible)."""
        names = [c for c, kind in self.raw_columns.items() if kind == "categorical"]
        others = [c for c in names if c not in self.spec.data.segments]
        return (others or names)[0]

    def segment(self) -> tuple[str, str]:
        """The first segment column and its most frequent value in the holdout."""
        if self._segment is None:
            column = self.spec.data.segments[0]
            rows = self.evaluation
            if column not in rows:  # a segment the feature code derives (an age band)
                code = load_feature_code(self.spec.features.code)
                rows = code.compute(rows[list(self.raw_columns)])
            self._segment = column, str(rows[column].astype(str).value_counts().index[0])
        return self._segment

    def medians(self) -> dict[str, float]:
        """Training medians of the numeric features: what a damaged row's features become."""
        if self._medians is None:
            features = load_feature_code(self.spec.features.code).compute(
                self.training[list(self.raw_columns)]
            )
            self._medians = {
                c: float(features[c].astype("float64").median()) for c in self.spec.features.numeric
            }
        return self._medians

    def fit(
        self,
        estimator: str,
        params: dict,
        labels: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> Any:
        """The spec's feature code around `estimator`, fitted on the training rows (or `rows`)."""
        spec = self.spec
        model = build_pipeline(
            spec.features.code,
            spec.features.numeric,
            spec.features.categorical,
            estimator,
            params,
            task=spec.model.task,
        )
        y = self.training[spec.data.label].to_numpy() if labels is None else np.asarray(labels)
        x = self.training[list(self.raw_columns)]
        if rows is not None:
            x, y = x.iloc[rows], y[rows]
        return model.fit(x, y)
