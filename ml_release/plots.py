"""Small PNG plots attached to gate results (reference against target distributions)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def distribution_plot(panels: list[dict], title: str) -> bytes:
    """Side-by-side bars of reference and target shares, one panel per column.

    Each panel is a dict with `column`, `labels`, `reference` and `target` counts and `stat`.
    """
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 2.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=False):
        ref = np.asarray(panel["reference"], float)
        tgt = np.asarray(panel["target"], float)
        x = np.arange(len(ref))
        ax.bar(x - 0.2, ref / max(ref.sum(), 1), 0.4, label="reference", color="#8da0cb")
        ax.bar(x + 0.2, tgt / max(tgt.sum(), 1), 0.4, label="target", color="#fc8d62")
        ax.set_title(f"{panel['column']}\n{panel['stat']}", fontsize=8)
        ax.set_xticks(x, panel["labels"], rotation=60, fontsize=6, ha="right")
        ax.tick_params(axis="y", labelsize=6)
    axes[0][0].legend(fontsize=6, loc="upper right")  # "best" searches every bar: slow
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
