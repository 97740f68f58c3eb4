"""Distribution distances between binned or categorical counts.

All three are effect sizes, not tests: they do not shrink to "significant" as samples grow, so a
threshold on them means the same at ten thousand rows and at ten million.
"""

import numpy as np
from scipy.spatial.distance import jensenshannon

PSI_EPSILON = 1e-4


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def psi(reference: np.ndarray, target: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index over matching bins; empty bins get `epsilon` share."""
    p = np.clip(_shares(np.asarray(reference, dtype=float)), epsilon, None)
    q = np.clip(_shares(np.asarray(target, dtype=float)), epsilon, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, target: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2, in [0, 1] (0 = identical distributions)."""
    p = _shares(np.asarray(reference, dtype=float))
    q = _shares(np.asarray(target, dtype=float))
    if p.sum() == 0 or q.sum() == 0:
        return 1.0 if p.sum() != q.sum() else 0.0
    return float(jensenshannon(p, q, base=2))


def linf_distance(reference: np.ndarray, target: np.ndarray) -> float:
    """Largest absolute change in any category's share."""
    return float(
        np.max(np.abs(_shares(np.asarray(reference, float)) - _shares(np.asarray(target, float))))
    )
