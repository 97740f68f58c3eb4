"""Regression metrics (`model.task: regression`): per-row losses, their means, and the bias.

Every metric is lower-is-better and is computed from the residual `y - prediction`:

- `mae`: mean absolute error, the mean of `|y - p|`;
- `rmse`: root mean squared error, the square root of the mean of `(y - p)^2`;
- `pinball_loss`: the mean pinball (quantile) loss at quantile `q`,
  `max(q (y - p), (q - 1) (y - p))` per row (at q = 0.5 it is half the MAE);
- `calibration_in_the_large`: `|mean(y) - mean(p)|`, how far the average prediction is from
  the average outcome (0 for a model right on average, whatever its row errors).

Each equals its scikit-learn counterpart (`mean_absolute_error`, `root_mean_squared_error`,
`mean_pinball_loss`; the last is `abs(y.mean() - p.mean())`); tests check it. A metric is
undefined only below `min_support` rows.
"""

import numpy as np

from ml_release.metrics.calibration import MetricInputError, numeric_or_nan, offending_rows_error
from ml_release.metrics.classification import MetricValue, Support

REGRESSION_METRICS: dict[str, bool] = {
    "mae": False,
    "rmse": False,
    "pinball_loss": False,
    "calibration_in_the_large": False,
}
DEFAULT_QUANTILE = 0.5


def check_regression_inputs(y, prediction) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as finite float arrays of one length.

    Raises:
        MetricInputError: A label or prediction is not a finite number; up to 10 offending row
            positions are listed.
        ValueError: The inputs are not one-dimensional or differ in length.
    """
    y_raw, p_raw = np.asarray(y), np.asarray(prediction)
    if y_raw.ndim != 1 or p_raw.ndim != 1 or len(y_raw) != len(p_raw):
        raise ValueError(
            f"y and prediction must be 1-D and of equal length; got shapes {y_raw.shape} and "
            f"{p_raw.shape}. Pass one label and one prediction per evaluation row."
        )
    labels, predictions = numeric_or_nan(y_raw), numeric_or_nan(p_raw)
    for column, values, raw in (("y", labels, y_raw), ("prediction", predictions, p_raw)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise offending_rows_error(
                column, bad, raw, "a finite number", "Drop or fix those rows before evaluating."
            )
    return labels, predictions


def pinball_losses(y: np.ndarray, prediction: np.ndarray, quantile: float) -> np.ndarray:
    """Pinball loss per row at `quantile` in (0, 1)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie strictly between 0 and 1, got {quantile}")
    residual = y - prediction
    return np.maximum(quantile * residual, (quantile - 1.0) * residual)


def row_losses(metric: str, y: np.ndarray, prediction: np.ndarray, quantile: float) -> np.ndarray:
    """Per-row values whose mean is `metric` (squared error for RMSE, residual for the bias)."""
    residual = y - prediction
    if metric == "mae":
        return np.abs(residual)
    if metric == "rmse":
        return residual**2
    if metric == "pinball_loss":
        return pinball_losses(y, prediction, quantile)
    if metric == "calibration_in_the_large":
        return residual
    raise ValueError(f"unknown regression metric {metric!r}; use one of {list(REGRESSION_METRICS)}")


def from_row_losses(metric: str, mean: float) -> float:
    """The metric from the mean of its `row_losses`."""
    if metric == "rmse":
        return float(np.sqrt(mean))
    if metric == "calibration_in_the_large":
        return float(abs(mean))
    return float(mean)


def regression_metric(
    metric: str,
    y,
    prediction,
    *,
    quantile: float = DEFAULT_QUANTILE,
    min_support: int = 1,
) -> MetricValue:
    """One regression metric on all rows (undefined below `min_support` rows).

    Raises:
        MetricInputError: A label or prediction is not a finite number.
    """
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}.")
    labels, predictions = check_regression_inputs(y, prediction)
    support = Support(len(labels), 0, 0)
    if len(labels) < min_support:
        reason = f"n={len(labels)} below min_support={min_support}"
        return MetricValue(metric, None, reason, support)
    losses = row_losses(metric, labels, predictions, quantile)
    return MetricValue(metric, from_row_losses(metric, float(losses.mean())), None, support)


__all__ = [
    "DEFAULT_QUANTILE",
    "REGRESSION_METRICS",
    "MetricInputError",
    "check_regression_inputs",
    "from_row_losses",
    "pinball_losses",
    "regression_metric",
    "row_losses",
]
