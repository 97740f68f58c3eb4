"""What a fitted model takes and returns, checked against the release's task before it is written.

Any fitted scikit-learn-API estimator or pipeline is accepted (a team's own `ColumnTransformer`,
encoders, `HistGradientBoosting*` with native categoricals, XGBoost and LightGBM through their
scikit-learn interfaces). What it must match is the task: a classifier (`classes_` and
`predict_proba`) for the classification tasks and ranking, a regressor (`predict`, no
`predict_proba`) for regression. Its input columns are the ones it was fitted on
(`feature_names_in_`) when it records them, else every raw column of the feature module; each
must be a raw column the feature module declares, so the data is checked for it before scoring.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ml_release.artifacts.manifest import ArtifactInputError, OutputSchema

CLASSIFICATION_TASKS = ("binary_classification", "multiclass_classification", "ranking")
PREDICTION_OUTPUT = "prediction"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def model_kind(model: Any) -> str:
    """`classifier`, `regressor`, or a description of what it is instead."""
    if hasattr(model, "predict_proba") and getattr(model, "classes_", None) is not None:
        return "classifier"
    if is_classifier(model):
        return "classifier"
    if is_regressor(model) or (hasattr(model, "predict") and not hasattr(model, "classes_")):
        return "regressor"
    return f"{type(model).__name__} (no predict or predict_proba)"


def check_fitted(model: Any) -> None:
    """ArtifactInputError unless `model` is fitted."""
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ArtifactInputError(
            f"{type(model).__name__} is not fitted: call fit(raw_rows, labels) before publishing"
        ) from None
    except TypeError as exc:  # not an estimator at all
        raise ArtifactInputError(
            f"{type(model).__name__} is not a scikit-learn-API estimator ({exc}); publish a "
            "fitted estimator or pipeline"
        ) from None


def output_schema(model: Any, task: str | None = None) -> OutputSchema:
    """The outputs of `model`; ArtifactInputError when they do not fit `task`.

    Args:
        model: A fitted estimator or pipeline.
        task: The spec's `model.task`; None accepts any classifier or regressor.
    """
    kind = model_kind(model)
    name = type(model).__name__
    if task in CLASSIFICATION_TASKS or (task is None and kind == "classifier"):
        if kind != "classifier":
            raise ArtifactInputError(
                f"model.task {task} expects a classifier with classes_ and predict_proba; "
                f"{name} is a {kind}. Fix: publish a classifier, or set model.task: regression"
            )
        values = [_plain(c) for c in model.classes_]
        if len(values) < 2 or (task == "binary_classification" and len(values) != 2):
            expected = "exactly 2 classes" if task == "binary_classification" else "2 or more"
            raise ArtifactInputError(
                f"model.task {task} expects {expected}; {name} has classes {values}. Fix: "
                "train on labels with every class, or use the task that fits them "
                "(binary_classification or multiclass_classification)"
            )
        return OutputSchema(classes=values, probability_columns=[f"proba_{c}" for c in values])
    if kind != "regressor":
        raise ArtifactInputError(
            f"model.task {task or 'regression'} expects a regressor (predict, no "
            f"predict_proba); {name} is a {kind}. Fix: publish a regressor, or set model.task "
            "to the classification task it was trained for"
        )
    return OutputSchema(prediction_column=PREDICTION_OUTPUT)


def fitted_columns(model: Any) -> list[str] | None:
    """The columns `model` was fitted on (`feature_names_in_`), or None when it does not say."""
    try:
        names = model.feature_names_in_
    except AttributeError:
        return None
    return [str(n) for n in names]


def model_columns(model: Any, declared: Mapping[str, str]) -> dict[str, str]:
    """Raw column -> kind of what `model` takes: its fitted columns, in its order, or all.

    Raises:
        ArtifactInputError: The model was fitted on a column the feature module does not
            declare (the release could not read it from the data).
    """
    fitted = fitted_columns(model)
    if fitted is None:
        return dict(declared)
    unknown = [c for c in fitted if c not in declared]
    if unknown:
        raise ArtifactInputError(
            f"{type(model).__name__} was fitted on column(s) {', '.join(map(repr, unknown))}, "
            f"which the feature module's REQUIRED_COLUMNS does not declare (it declares "
            f"{', '.join(declared)}). Fix: add them to REQUIRED_COLUMNS, or fit the model on "
            "the declared raw columns"
        )
    return {c: declared[c] for c in fitted}
