"""The paired data of the regression and multi-class tasks: rows, scores, stored tables, sets.

Both models score the same rows of the holdout and the labelled serving log, as for binary
classification (`ml_release.scoring`). A regression stores one `score` per row (the
prediction). A multi-class model stores one column `proba__<class>` per class, in its class
order; the candidate's and production's classes must be the same set (else the report refuses
to compare them, naming both), and every label of the data must be one of the model's classes.
Probability rows that are finite but do not sum to 1 mean the model is not a classifier of
this task: scoring stops with an error naming the rows. Non-finite scores are kept and flagged
(`valid_predictions`), never dropped or clipped.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.evaluation.data import (
    EvalSet,
    PredictionTables,
    paired_arrays,
    paired_predictions,
)
from ml_release.identifiers import quote
from ml_release.metrics.multiclass import SUM_TOLERANCE
from ml_release.scoring import KEY_COLUMNS, load_for_task, model_input, raw_evaluation_rows
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

PROBA = "proba__"
MAX_LISTED = 5


@dataclass
class RegressionSet(EvalSet):
    """An `EvalSet` with numeric labels and both models' predictions."""

    @property
    def invalid(self) -> np.ndarray:
        """Positions of candidate predictions that are NaN or infinite."""
        return invalid_predictions(self.candidate)


@dataclass
class MulticlassSet(EvalSet):
    """An `EvalSet` with class positions as `y` and `(n, K)` probabilities per model."""

    classes: list[str]

    @property
    def invalid(self) -> np.ndarray:
        """Positions of candidate rows with a probability that is not finite or not in [0, 1]."""
        return invalid_probability_rows(self.candidate)


def invalid_predictions(scores) -> np.ndarray:
    """Positions of predictions that are NaN or infinite."""
    return np.flatnonzero(~np.isfinite(np.asarray(scores, dtype=float)))


def invalid_probability_rows(scores) -> np.ndarray:
    """Positions of probability rows with a value that is non-finite or outside [0, 1]."""
    p = np.asarray(scores, dtype=float)
    return np.flatnonzero(~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1))


def label_text(values: pd.Series) -> pd.Series:
    """Class labels as text, whole numbers without a decimal part (1.0 and 1 are class '1')."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        return numbers.astype("int64").astype(str)
    return values.astype(str)


def regression_rows(warehouse: Warehouse, spec: ReleaseSpec) -> pd.DataFrame:
    """Both evaluation sets' raw rows with numeric `label`; DataInputError naming bad labels."""
    frame = raw_evaluation_rows(warehouse, spec)
    label = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~np.isfinite(label.to_numpy(dtype=float))
    if bad.any():
        shown = ", ".join(frame["row_id"][bad].head(MAX_LISTED))
        raise DataInputError(
            f"label {spec.data.label!r} must be a finite number for model.task regression; "
            f"{int(bad.sum())} evaluation row(s) are not, e.g. rows {shown}. Fix the export"
        )
    return frame.assign(label=label.astype(float))


def multiclass_rows(warehouse: Warehouse, spec: ReleaseSpec) -> pd.DataFrame:
    """Both evaluation sets' raw rows with the class `label` as text."""
    frame = raw_evaluation_rows(warehouse, spec)
    return frame.assign(label=label_text(frame["label"]))


def predict(
    folder: Path, spec: ReleaseSpec, rows: pd.DataFrame, digest: str | None = None
) -> np.ndarray:
    """The regressor's prediction for every row (safe-loaded, task and columns checked)."""
    model = load_for_task(folder, spec, digest)
    x = model_input(model, rows, spec, folder)
    return np.asarray(model.predict(x), dtype=float).reshape(len(rows))


def class_probabilities(
    folder: Path, spec: ReleaseSpec, rows: pd.DataFrame, digest: str | None = None
) -> pd.DataFrame:
    """One column per class (the model's order): `predict_proba` of every row, checked."""
    model = load_for_task(folder, spec, digest)
    classes = [str(c) for c in label_text(pd.Series(list(model.classes_)))]
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        counts = rows["label"].value_counts()
        seen = ", ".join(f"{c!r} ({counts[c]} rows)" for c in unknown[:MAX_LISTED])
        raise DataInputError(
            f"{folder}: the evaluation rows have class(es) {seen} that the model's classes "
            f"{classes} do not include. Fix: train on data with every class"
        )
    p = np.asarray(model.predict_proba(model_input(model, rows, spec, folder)), dtype=float)
    if p.shape != (len(rows), len(classes)):
        raise DataInputError(
            f"{folder}: predict_proba returned shape {p.shape}; expected "
            f"{(len(rows), len(classes))} (one probability per class and row)"
        )
    finite = np.isfinite(p).all(axis=1)
    sums = p.sum(axis=1)
    off = finite & (np.abs(sums - 1) > SUM_TOLERANCE)
    if off.any():
        shown = ", ".join(
            f"{row} (sum {total:.4g})"
            for row, total in zip(
                rows["row_id"][off][:MAX_LISTED], sums[off][:MAX_LISTED], strict=True
            )
        )
        raise DataInputError(
            f"{folder}: predict_proba rows must sum to 1 for model.task multiclass_classification; "
            f"{int(off.sum())} of {len(rows)} do not, e.g. rows {shown}. Fix: publish a classifier "
            "whose predict_proba gives class probabilities"
        )
    return pd.DataFrame(p, columns=classes, index=rows.index)


def training_mean(warehouse: Warehouse, spec: ReleaseSpec, rows: pd.DataFrame):
    """The trivial regressor: the training mean for every row; and its description."""
    with warehouse.connect() as connection:
        mean = connection.execute(
            f"SELECT avg({quote(spec.data.label)}) FROM {quote(keys.TRAINING_SNAPSHOT)}"
        ).fetchall()[0][0]
    return np.full(len(rows), float(mean)), f"trivial (training mean {mean:.4g}): no production yet"


def class_prior(warehouse: Warehouse, spec: ReleaseSpec, rows: pd.DataFrame):
    """The trivial classifier: the training class shares for every row; and its description."""
    label = quote(spec.data.label)
    counts = warehouse.frame(
        f"SELECT {label} AS label, count(*) AS n FROM {quote(keys.TRAINING_SNAPSHOT)} "
        f"WHERE {label} IS NOT NULL GROUP BY 1"
    )
    counts["label"] = label_text(counts["label"])
    shares = counts.groupby("label")["n"].sum() / counts["n"].sum()
    frame = pd.DataFrame(
        np.tile(shares.to_numpy(), (len(rows), 1)), columns=list(shares.index), index=rows.index
    )
    described = ", ".join(f"{c}: {v:.3f}" for c, v in shares.items())
    return frame, f"trivial (training class shares {described}): no production yet"


def prediction_table(rows: pd.DataFrame, scores, spec: ReleaseSpec) -> pd.DataFrame:
    """Stored predictions: keys, label, segments, and `score` or one `proba__<class>` each."""
    segments = [f"segment__{s}" for s in spec.data.segments]
    out = rows[[*KEY_COLUMNS, *segments]].copy()
    if isinstance(scores, pd.DataFrame):
        for column in scores.columns:
            out[f"{PROBA}{column}"] = scores[column].to_numpy(dtype=float)
    else:
        out["score"] = np.asarray(scores, dtype=float)
    return out


def load_regression_sets(
    warehouse: Warehouse, tables: PredictionTables, segments: list[str], trivial_baseline: bool
):
    """Join candidate and baseline predictions on (eval_set, row_id), per evaluation set."""
    frame = paired_predictions(warehouse, tables, segments)
    return {
        str(name): RegressionSet(
            name=str(name),
            y=part["label"].to_numpy(dtype=float),
            trivial_baseline=trivial_baseline,
            **paired_arrays(part, segments),  # type: ignore[arg-type]
        )
        for name, part in frame.groupby("eval_set", sort=True)
    }


def stored_classes(warehouse: Warehouse, table: str) -> list[str]:
    """The classes of a stored multi-class prediction table, in its column order."""
    return [c.removeprefix(PROBA) for c in warehouse.columns(table) if c.startswith(PROBA)]


def load_multiclass_sets(
    warehouse: Warehouse, tables: PredictionTables, segments: list[str], trivial_baseline: bool
):
    """Both models' class probabilities on the same rows, in the candidate's class order."""
    classes = stored_classes(warehouse, tables.candidate)
    baseline = stored_classes(warehouse, tables.baseline)
    if sorted(classes) != sorted(baseline):
        who = "the trivial model (training labels)" if trivial_baseline else "production"
        raise DataInputError(
            f"the candidate's classes {classes} differ from {who}'s {baseline}: the models do "
            "not predict the same thing and cannot be compared. Fix: train the candidate on the "
            "same classes, or release it as a new model name"
        )
    columns = [
        "c.eval_set",
        "c.row_id",
        "c.label",
        *(f"c.{quote(PROBA + c)} AS {quote('c_' + c)}" for c in classes),
        *(f"b.{quote(PROBA + c)} AS {quote('b_' + c)}" for c in classes),
        *(f"c.{quote(f'segment__{s}')}" for s in segments),
    ]
    frame = warehouse.frame(
        f"SELECT {', '.join(columns)} FROM {quote(tables.candidate)} c "
        f"JOIN {quote(tables.baseline)} b USING (eval_set, row_id) "
        "ORDER BY c.eval_set, c.row_id"
    )
    position = {c: i for i, c in enumerate(classes)}
    sets = {}
    for name, part in frame.groupby("eval_set", sort=True):
        sets[str(name)] = MulticlassSet(
            name=str(name),
            row_ids=part["row_id"].astype(str).to_numpy(),
            y=part["label"].astype(str).map(position).to_numpy(dtype=np.int64),
            candidate=part[[f"c_{c}" for c in classes]].to_numpy(dtype=float),
            baseline=part[[f"b_{c}" for c in classes]].to_numpy(dtype=float),
            segments={s: part[f"segment__{s}"].astype(str).to_numpy() for s in segments},
            trivial_baseline=trivial_baseline,
            classes=classes,
        )
    return sets
