"""Evaluation evidence people read: tables, worst segments, forest plot, reliability, HTML.

The HTML report of each run lands in `ML_RELEASE_HOME/reports/<run id>/`.
"""

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release.evaluation.data import EvalSet
from ml_release.gates.result import GateResult
from ml_release.metrics import METRICS, compute_metrics, reliability_table
from ml_release.spec import GateSpec


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation report shows: title, gate results, metrics table, images."""

    title: str
    results: list[GateResult]
    metrics: pd.DataFrame
    metrics_key: str  # the report asset's metadata key for `metrics`
    images: dict[str, bytes]


def metrics_table(sets: dict[str, EvalSet], threshold: float) -> pd.DataFrame:
    """Every metric for candidate and baseline on every evaluation set (valid scores only)."""
    rows = []
    for data in sets.values():
        keep = np.ones(len(data.y), bool)
        keep[data.invalid] = False
        for model, scores in (("candidate", data.candidate), ("baseline", data.baseline)):
            values = compute_metrics(data.y[keep], scores[keep], threshold=threshold)
            for name, value in values.items():
                rows.append(
                    {
                        "eval_set": data.name,
                        "model": model,
                        "metric": name,
                        "value": value.value,
                        "undefined": value.undefined_reason or "",
                    }
                )
    table = pd.DataFrame(rows)
    wide = table.pivot_table(
        index=["eval_set", "metric"], columns="model", values="value", aggfunc="first"
    ).reset_index()
    wide["delta"] = wide.get("candidate") - wide.get("baseline")
    order = {name: i for i, name in enumerate(METRICS)}
    return wide.sort_values(
        ["eval_set", "metric"], key=lambda c: c.map(order).fillna(0) if c.name == "metric" else c
    )


def worst_segments_markdown(results: list[GateResult], limit: int = 10) -> str:
    """The worst judged segments of every segment gate, as a Markdown table."""
    lines = ["| gate | segment | delta | interval | n | verdict |", "|---|---|---|---|---|---|"]
    for result in results:
        judged = [r for r in result.rows if "delta" in r and r.get("column") != "(all)"]
        for row in judged[:limit]:
            lines.append(
                f"| {result.gate} | {row['column']}={row['value']} | {row['delta']:+.4f} | "
                f"[{row['low']:+.4f}, {row['high']:+.4f}] | {row['n']:,} | {row['verdict']} |"
            )
    return "\n".join(lines) if len(lines) > 2 else "_no segment gate in the spec_"


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def forest_plot(result: GateResult, margin: float | None) -> bytes:
    """Segment deltas with their intervals; the tolerated drop as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if "delta" in r][:30]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1.2))
    colors = {"pass": "#1b9e77", "fail": "#d95f02", "inconclusive": "#7570b3"}
    for i, row in enumerate(rows):
        ax.errorbar(
            row["delta"],
            i,
            xerr=[[row["delta"] - row["low"]], [row["high"] - row["delta"]]],
            fmt="o",
            color=colors.get(row["verdict"], "grey"),
            ms=4,
        )
    ax.set_yticks(range(len(rows)), [f"{r['column']}={r['value']}" for r in rows], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    if margin is not None:
        ax.axvline(-margin, color="#d95f02", ls="--", lw=0.8, label=f"-{margin} (max drop)")
        ax.legend(fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"{result.gate}: candidate - production per segment", fontsize=9)
    return png(fig)


def forest_plots(gates: list[GateSpec], results: list[GateResult]) -> dict[str, bytes]:
    """A forest plot of every segment gate that judged a segment, keyed by gate and target."""
    return {
        f"{gate.name} ({result.target})": forest_plot(
            result, getattr(gate.params, "max_drop", None)
        )
        for gate, result in zip(gates, results, strict=True)
        if gate.name.startswith("segment_") and any("delta" in r for r in result.rows)
    }


def reliability_plot(data: EvalSet, bins: int = 10) -> bytes:
    """Mean label against mean score per bin, candidate and baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = np.ones(len(data.y), bool)
    keep[data.invalid] = False
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for label, scores in (("candidate", data.candidate), ("baseline", data.baseline)):
        table = reliability_table(data.y[keep], scores[keep], bins=bins).dropna()
        ax.plot(table["mean_score"], table["mean_label"], marker="o", ms=3, label=label)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.legend(fontsize=7)
    ax.set_title(f"reliability ({data.name})", fontsize=9)
    return png(fig)


def write_image(folder: Path, name: str, png: bytes) -> Path:
    """A plot as a PNG file in a run's report folder; its path (for `MetadataValue.path`).

    Plots go to files, not base64 into the event log: the log stays small, and the HTML report
    beside them shows them all on one page.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".png")
    path.write_bytes(png)
    return path


def html_report(
    title: str, metrics: pd.DataFrame, results: list[GateResult], images: dict[str, bytes]
) -> str:
    """A self-contained HTML report."""
    parts = [
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>",
        f"<body style='font-family:sans-serif'><h1>{html.escape(title)}</h1>",
        "<h2>Gates</h2><table border=1 cellpadding=4><tr><th>gate</th><th>set</th>"
        "<th>verdict</th><th>evidence</th></tr>",
    ]
    for r in results:
        parts.append(
            f"<tr><td>{html.escape(r.gate)}</td><td>{html.escape(r.target)}</td>"
            f"<td>{r.verdict.value}</td><td>{html.escape(r.summary)}</td></tr>"
        )
    parts.append("</table><h2>Metrics</h2>")
    parts.append(metrics.to_html(index=False, float_format=lambda v: f"{v:.4f}"))
    for name, png in images.items():
        encoded = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{encoded}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
