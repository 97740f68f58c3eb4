"""Control of false alarms when one gate looks at many segments.

A gate that compares the candidate with production in m segments makes m claims; at 95% each,
about one segment in twenty would be flagged by chance alone. Two tools keep the family honest:

- Intervals: each segment's interval is computed at the Bonferroni level 1 - alpha/m
  (`simultaneous_confidence`), so all m intervals hold together with probability >= 1 - alpha.
  The verdicts read these intervals.
- p-values: `holm` adjusts the one-sided "drop beyond margin" p-values for the family-wise error
  rate (Holm 1979); `benjamini_hochberg` controls the false discovery rate instead (Benjamini &
  Hochberg 1995), an option for advisory (WARN) gates over hundreds of segments.

Holm is a step-down procedure on ordered p-values and has no interval of its own: its interval
analogue is the single-step Bonferroni interval, which is why intervals use Bonferroni.
NaN p-values (segments that were not tested) stay NaN and do not count in m.
"""

from typing import Literal

import numpy as np

IntervalAdjustment = Literal["bonferroni", "holm", "sidak", "none"]


def _tested(p_values: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D sequence, got shape {p.shape}")
    tested = ~np.isnan(p)
    if ((p[tested] < 0) | (p[tested] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[tested].min()}..{p[tested].max()}")
    return p, tested


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate).

    With p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of the i-th is
    max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where adjusted <= alpha keeps the
    chance of any false rejection <= alpha under any dependence between the tests.

    Args:
        p_values: One p-value per test; NaN for a test that was not made.

    Returns:
        Adjusted p-values in the input order.
    """
    p, tested = _tested(p_values)
    q = p[tested]
    m = q.size
    order = np.argsort(q, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * q[order]), 1.0)
    out = p.copy()
    out[tested] = adjusted
    return out


def benjamini_hochberg(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate).

    With p-values sorted ascending, the adjusted value of the i-th is min over j >= i of
    min(1, m p_(j) / j). Rejecting where adjusted <= q keeps the expected share of false
    rejections among all rejections <= q for independent or positively dependent tests.

    Args:
        p_values: One p-value per test; NaN for a test that was not made.

    Returns:
        Adjusted p-values in the input order.
    """
    p, tested = _tested(p_values)
    q = p[tested]
    m = q.size
    order = np.argsort(q, kind="stable")[::-1]  # largest first
    rank = m - np.arange(m)  # ascending rank of each p-value in that order
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.minimum.accumulate(q[order] * m / rank), 1.0)
    out = p.copy()
    out[tested] = adjusted
    return out


def simultaneous_confidence(
    confidence: float, m: int, method: IntervalAdjustment = "bonferroni"
) -> float:
    """Per-segment confidence so that m intervals hold together at `confidence`.

    `bonferroni` (and `holm`, whose interval analogue it is) gives 1 - (1 - confidence) / m,
    valid under any dependence between segments; `sidak` gives confidence ** (1 / m), exact
    for independent segments and slightly narrower; `none` returns `confidence` unchanged.

    Args:
        confidence: Family-wise coverage wanted, e.g. 0.95.
        m: Number of segments (intervals) in the family.
        method: Adjustment.

    Returns:
        The confidence to compute each segment's interval at.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if m < 1:
        raise ValueError(f"a family needs at least one comparison, got m={m}")
    if method in ("bonferroni", "holm"):
        return 1.0 - (1.0 - confidence) / m
    if method == "sidak":
        return confidence ** (1.0 / m)
    if method == "none":
        return confidence
    raise ValueError(f"unknown adjustment {method!r}; use bonferroni, holm, sidak or none")
