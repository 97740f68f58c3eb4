"""Quality of predicted probabilities: calibration error, log loss, Brier score; shared checks.

Binning: `bins` equal-width bins over [0, 1] (10 by default) with edges
`numpy.linspace(0, 1, bins + 1)`. Bins are right-closed, `(lower, upper]`, except the first,
which also holds 0: `[0, 0.1], (0.1, 0.2], ..., (0.9, 1]`. A score lying exactly on an edge
therefore belongs to the bin below it.

Expected calibration error, over the non-empty bins:
`ECE = sum_b (count_b / n) * |mean score_b - mean label_b|`, in [0, 1]; smaller is better.

This is the lowest module of `ml_release.metrics`: it also holds the input checks and the
weight-matrix helpers, so the other modules import from here and never the reverse. Weights are
row multiplicities, a vector `(n,)` or a matrix `(B, n)` (one row per bootstrap resample); a
matrix yields a `(B,)` array, computed without a loop over rows or resamples.
"""

import numpy as np
import pandas as pd
from scipy import sparse

DEFAULT_BINS = 10
MAX_LISTED_ROWS = 10
LOG_LOSS_EPSILON = 1e-15


class MetricInputError(ValueError):
    """Labels or scores no metric may use; `rows` holds the first 10 offending row indices."""

    def __init__(self, message: str, column: str, rows: tuple[int, ...], count: int):
        super().__init__(message)
        self.column = column
        self.rows = rows
        self.count = count


def offending_rows_error(column: str, bad: np.ndarray, values, requirement: str, fix: str):
    """A `MetricInputError` quoting the first offending rows (mask `bad`) of `values`."""
    rows = np.flatnonzero(bad)
    shown = rows[:MAX_LISTED_ROWS]
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    plain = [values[i].item() if isinstance(values[i], np.generic) else values[i] for i in shown]
    quoted = ", ".join(repr(value) for value in plain)
    message = (
        f"{column} must be {requirement}; {len(rows)} row(s) are not: row indices "
        f"{', '.join(str(i) for i in shown)}{more} (values {quoted}). {fix}"
    )
    return MetricInputError(message, column, tuple(int(i) for i in shown), len(rows))


def numeric_or_nan(values: np.ndarray) -> np.ndarray:
    """Return `values` as floats; entries that are not numbers become NaN."""
    if values.dtype.kind in "biuf":
        return values.astype(float)
    # Object columns (pandas nullable dtypes, mixed types): anything non-numeric becomes NaN,
    # which the caller reports as an offending row instead of failing on the whole column.
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def check_binary_inputs(y, score) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores for the binary-classification metrics.

    Args:
        y: Labels, each exactly 0 or 1 (bool or numeric).
        score: Predicted probability of the positive class, finite and within [0, 1].

    Returns:
        `(y, score)` as a bool array and a float array.

    Raises:
        MetricInputError: A label is not 0/1 or a score is not a finite value in [0, 1]; the
            message lists up to 10 offending row indices (positions, from 0).
        ValueError: The inputs are not one-dimensional or differ in length.
    """
    y_raw, score_raw = np.asarray(y), np.asarray(score)
    if y_raw.ndim != 1 or score_raw.ndim != 1 or len(y_raw) != len(score_raw):
        raise ValueError(
            f"y and score must be 1-D and of equal length; got shapes {y_raw.shape} and "
            f"{score_raw.shape}. Pass one label and one score per evaluation row."
        )
    labels = numeric_or_nan(y_raw)
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        fix = "Encode the positive class as 1 and the other as 0."
        raise offending_rows_error("y", bad, y_raw, "a 0/1 label", fix)
    probabilities = numeric_or_nan(score_raw)
    bad = ~np.isfinite(probabilities) | (probabilities < 0) | (probabilities > 1)
    if bad.any():
        fix = "Pass the positive-class probability, e.g. predict_proba(X)[:, 1]."
        raise offending_rows_error("score", bad, score_raw, "a finite probability in [0, 1]", fix)
    return labels == 1, probabilities


def group_codes(values, what: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a grouping column as text, sorted, and each row's code into them."""
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"{what} has shape {array.shape}; expected one value per row, ({n},).")
    if array.dtype.kind not in "biufUS":
        array = array.astype(str)  # mixed objects and None do not sort; their text does
    labels, codes = np.unique(array, return_inverse=True)
    return np.array([str(label) for label in labels]), codes.ravel()


def as_weight_matrix(weights, n: int) -> tuple[np.ndarray, bool]:
    """Return weights as a `(B, n)` float matrix, and whether the caller gave a vector (or None)."""
    if weights is None:
        return np.ones((1, n)), True
    matrix = np.asarray(weights, dtype=float)
    vector = matrix.ndim == 1
    matrix = np.atleast_2d(matrix)
    if matrix.ndim != 2 or matrix.shape[1] != n or (matrix < 0).any():
        raise ValueError(
            f"weights must be non-negative with shape ({n},) or (B, {n}); got {matrix.shape}."
        )
    return matrix, vector


def group_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum each row of `values` (B, n) within `groups` (n,) codes; returns `(B, n_groups)`."""
    n = len(groups)
    indicator = sparse.csr_array((np.ones(n), (np.arange(n), groups)), shape=(n, n_groups))
    return np.asarray((indicator.T @ values.T).T)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise quotient, NaN where the denominator is not positive."""
    out = np.full(np.shape(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def as_result(values: np.ndarray, vector: bool):
    """A float for vector weights, else the `(B,)` array."""
    return float(values[0]) if vector else values


def bin_index(score: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin of each score under the module's binning (0-based; 0 and the first edge in bin 0)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, score, side="left") - 1, 0, bins - 1)


def expected_calibration_error(y, score, weights=None, *, bins: int = DEFAULT_BINS):
    """Expected calibration error with equal-width bins (see the module docstring).

    Args:
        y: Labels, as returned by `check_binary_inputs`.
        score: Probabilities, as returned by `check_binary_inputs`.
        weights: None, `(n,)` or `(B, n)` row multiplicities.
        bins: Number of equal-width bins over [0, 1].

    Returns:
        A float (vector or no weights) or a `(B,)` array; NaN where the total weight is 0.
    """
    matrix, vector = as_weight_matrix(weights, len(score))
    # sum_b (w_b / W) |mean score_b - mean label_b| = sum_b |sum_b w (score - y)| / W
    gap = group_sums(matrix * (score - y), bin_index(score, bins), bins)
    return as_result(ratio(np.abs(gap).sum(axis=1), matrix.sum(axis=1)), vector)


def log_loss(y, score, weights=None, *, threshold: float = 0.5):
    """Mean negative log-likelihood, natural log, scores clipped to [1e-15, 1 - 1e-15]."""
    matrix, vector = as_weight_matrix(weights, len(y))
    clipped = np.clip(score, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    loss = -np.where(y, np.log(clipped), np.log1p(-clipped))
    return as_result(ratio(matrix @ loss, matrix.sum(axis=1)), vector)


def brier(y, score, weights=None, *, threshold: float = 0.5):
    """Mean squared difference between score and label."""
    matrix, vector = as_weight_matrix(weights, len(y))
    return as_result(ratio(matrix @ (score - y) ** 2, matrix.sum(axis=1)), vector)


def reliability_table(y, score, bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """Per-bin table for a reliability diagram, one row per bin (empty bins included).

    Args:
        y: 0/1 labels.
        score: Probabilities in [0, 1].
        bins: Number of equal-width bins over [0, 1].

    Returns:
        Columns `lower`, `upper`, `count`, `mean_score`, `mean_label`; the means are NaN for
        empty bins, and the counts sum to the number of rows.

    Raises:
        MetricInputError: As `check_binary_inputs`.
    """
    labels, probabilities = check_binary_inputs(y, score)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = bin_index(probabilities, bins)
    count = np.bincount(index, minlength=bins)
    return pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "mean_score": ratio(np.bincount(index, probabilities, minlength=bins), count),
            "mean_label": ratio(np.bincount(index, labels.astype(float), minlength=bins), count),
        }
    )
