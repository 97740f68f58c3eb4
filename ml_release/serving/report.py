"""Evidence people look at: the latency table and the latency distributions, side by side."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ml_release.evaluation.report import png
from ml_release.serving.gates import latency_rows
from ml_release.serving.run import ServingReport

COLORS = {"candidate": "#fc8d62", "production": "#8da0cb", "production_replica": "#66c2a5"}


def latency_table(report: ServingReport) -> pd.DataFrame:
    """One row per server: answered requests, latency percentiles, load time, peak memory."""
    return pd.DataFrame(latency_rows(report))


def batch_table(report: ServingReport) -> pd.DataFrame:
    """Latency and throughput per server and batch size."""
    rows = [
        {"server": role, **batch} for role, m in report.measurements.items() for batch in m.batches
    ]
    return pd.DataFrame(
        rows, columns=["server", "batch_size", "p50_ms", "p99_ms", "rows_per_second"]
    )


def latency_plot(report: ServingReport) -> bytes:
    """Empirical CDF of single-request latency per server (log scale), p99 marked."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for role, m in report.measurements.items():
        if not m.latencies_ms:
            continue
        values = np.sort(m.latencies_ms)
        share = np.arange(1, len(values) + 1) / len(values)
        color = COLORS.get(role)
        ax.step(values, share, where="post", label=f"{role} ({m.version})", color=color)
        ax.axvline(m.percentile(99), color=color, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("single-request latency, ms (dotted: p99)")
    ax.set_ylabel("share of requests")
    ax.set_title("serving latency: candidate vs production, same machine, same run", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return png(fig)
