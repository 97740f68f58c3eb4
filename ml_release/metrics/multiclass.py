"""Multi-class metrics (`model.task: multiclass_classification`) from class probabilities.

Labels are class positions `0..K-1` (in the model's class order) and scores an `(n, K)` matrix
of probabilities; the predicted class is the most probable one (the first on ties, as
scikit-learn's `predict`).

- `log_loss`: mean of `-log p(true class)`, probabilities clipped to [1e-15, 1 - 1e-15];
- `macro_f1`: the mean F1 of the classes present among the labels (a class never predicted
  has F1 0), equal to `f1_score(y, pred, labels=present, average="macro", zero_division=0)`;
- `class_recall`: recall of each class, the share of its rows predicted as it;
- `top_k_accuracy`: share of rows whose class is among the k most probable, ties ordered as
  `sklearn.metrics.top_k_accuracy_score` orders them.
"""

import numpy as np

from ml_release.metrics.calibration import offending_rows_error

MULTICLASS_METRICS: dict[str, bool] = {
    "log_loss": False,
    "macro_f1": True,
    "class_recall": True,
    "top_k_accuracy": True,
}
EPSILON = 1e-15
SUM_TOLERANCE = 1e-6
DEFAULT_K = 2


def check_multiclass_inputs(y, probabilities) -> tuple[np.ndarray, np.ndarray]:
    """Class positions and an `(n, K)` probability matrix whose rows sum to 1.

    Raises:
        MetricInputError: A label is not a class position, or a row of probabilities has a
            value outside [0, 1] or does not sum to 1 (up to 10 rows listed).
        ValueError: The shapes do not fit together.
    """
    labels, scores = np.asarray(y), np.asarray(probabilities, dtype=float)
    if scores.ndim != 2 or labels.ndim != 1 or len(labels) != len(scores):
        raise ValueError(
            f"y must be 1-D and probabilities (n, K) with the same n; got {labels.shape} and "
            f"{scores.shape}"
        )
    classes = scores.shape[1]
    codes = np.asarray(labels, dtype=float)
    bad = ~np.isfinite(codes) | (codes < 0) | (codes >= classes) | (codes != np.round(codes))
    if bad.any():
        raise offending_rows_error(
            "y", bad, labels, f"a class position 0..{classes - 1}", "Map labels to classes first."
        )
    sums = scores.sum(axis=1)
    bad = ~np.isfinite(scores).all(axis=1) | (scores < 0).any(axis=1) | (scores > 1).any(axis=1)
    bad |= np.abs(sums - 1.0) > SUM_TOLERANCE
    if bad.any():
        raise offending_rows_error(
            "probabilities",
            bad,
            sums,
            "a row of probabilities in [0, 1] summing to 1 (sum shown)",
            "Score with the model's predict_proba.",
        )
    return codes.astype(np.int64), scores


def predicted(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of every row (the first on ties)."""
    return np.argmax(probabilities, axis=1)


def log_losses(y: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per-row log loss of the true class."""
    p = np.clip(probabilities[np.arange(len(y)), y], EPSILON, 1 - EPSILON)
    return -np.log(p)


def top_k_hits(y: np.ndarray, probabilities: np.ndarray, k: int) -> np.ndarray:
    """Per row 1.0 when the true class is among the `k` most probable, else 0.0."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, probabilities.shape[1])
    # scikit-learn's order: a stable ascending sort read backwards (later classes win ties).
    order = np.argsort(probabilities, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (order == y[:, None]).any(axis=1).astype(float)


def class_recall(y: np.ndarray, probabilities: np.ndarray, position: int) -> float | None:
    """Recall of class `position`, or None when no row has it."""
    rows = y == position
    if not rows.any():
        return None
    return float((predicted(probabilities[rows]) == position).mean())


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2TP / (2TP + FP + FN), 0 where that denominator is 0 (any leading shape)."""
    denominator = 2 * tp + fp + fn
    return np.divide(
        2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0
    )


def macro_f1(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean F1 over the classes present among the labels."""
    prediction = predicted(probabilities)
    classes = probabilities.shape[1]
    tp = np.bincount(y[prediction == y], minlength=classes).astype(float)
    fp = np.bincount(prediction[prediction != y], minlength=classes).astype(float)
    fn = np.bincount(y[prediction != y], minlength=classes).astype(float)
    present = np.bincount(y, minlength=classes) > 0
    return float(f1_from_counts(tp, fp, fn)[present].mean())


def multiclass_metric(metric: str, y: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """`log_loss`, `macro_f1` or `top_k_accuracy` on validated inputs."""
    if metric == "log_loss":
        return float(log_losses(y, probabilities).mean())
    if metric == "macro_f1":
        return macro_f1(y, probabilities)
    if metric == "top_k_accuracy":
        return float(top_k_hits(y, probabilities, k).mean())
    raise ValueError(f"unknown multi-class metric {metric!r}; use {list(MULTICLASS_METRICS)}")
