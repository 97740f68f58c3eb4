"""Interval of a latency percentile ratio, from interleaved requests to two servers.

The serving checks send the same requests to the candidate and to production in a rotating
order, one of each per step, so request k of each saw the same moment of the machine. A slow
moment (another process, a garbage collection in the client) raises both; pairing the steps
keeps that out of the comparison, and resampling *blocks* of consecutive steps keeps the
slow moments, which last longer than one step, whole. The interval is the percentile
interval of log(p_q(candidate) / p_q(production)) over moving-block bootstrap resamples of the
steps (Kuensch 1989), with at least 20 draws beyond each end (`resamples_for`). The
comparison is returned as the relative change ratio - 1, so a gate reads it against a
tolerated relative increase (`max_increase`) like any lower-is-better metric.
"""

import math

import numpy as np

from ml_release.stats.paired import Comparison, resamples_for


def block_length(n: int) -> int:
    """Steps per block: n^(1/3), the usual order for the moving-block bootstrap."""
    return max(1, round(n ** (1.0 / 3.0)))


def percentile_ratio(
    candidate: np.ndarray,
    production: np.ndarray,
    q: float = 99.0,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """p_q(candidate) / p_q(production) - 1 with its paired moving-block bootstrap interval.

    Args:
        candidate: Latencies of the candidate, one per step, in the order they were sent.
        production: Production's latencies for the same steps (same length, same order).
        q: The percentile (99 for p99).
        confidence: Two-sided coverage of the interval.
        resamples: Bootstrap resamples wanted (raised so each tail holds 20 draws).
        seed: Seed of the resampling; the same seed gives the same interval.

    Returns:
        The comparison: `candidate`/`baseline` the two percentiles, `delta` and the interval
        of ratio - 1, `draws` the resampled ratio - 1.

    Raises:
        ValueError: The arrays differ in length, hold fewer than 20 steps, or hold values
            that are not finite and positive.
    """
    c, p = np.asarray(candidate, dtype=float), np.asarray(production, dtype=float)
    if c.shape != p.shape or c.ndim != 1:
        raise ValueError(f"paired latencies must be 1-D of one length, got {c.shape}, {p.shape}")
    if c.size < 20:
        raise ValueError(f"a p{q:g} interval needs at least 20 paired requests, got {c.size}")
    if not (np.isfinite(c).all() and np.isfinite(p).all() and (c > 0).all() and (p > 0).all()):
        raise ValueError("latencies must be finite and positive; drop the failed requests first")
    n, length = c.size, block_length(c.size)
    b = resamples_for(confidence, resamples)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(b, math.ceil(n / length)))
    index = ((starts[..., None] + np.arange(length)) % n).reshape(b, -1)[:, :n]
    log_ratio = np.log(np.percentile(c[index], q, axis=1)) - np.log(
        np.percentile(p[index], q, axis=1)
    )
    alpha = 1.0 - confidence
    low, high = np.quantile(log_ratio, [alpha / 2, 1 - alpha / 2])
    pc, pp = float(np.percentile(c, q)), float(np.percentile(p, q))
    return Comparison(
        f"p{q:g}_ratio",
        pc,
        pp,
        pc / pp - 1.0,
        float(np.expm1(low)),
        float(np.expm1(high)),
        confidence,
        f"paired_block_bootstrap(B={b}, block={length})",
        n,
        draws=np.expm1(log_ratio),
    )
