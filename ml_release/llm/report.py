"""The comparison of a candidate prompt/config with production on the same questions.

`LLMReport` holds both answer tables (`ml_release.llm.evaluate`), paired by question, and
produces the evidence people read: a per-route table, the worst answers with their context and
why the proxy flagged them, and token and latency distributions.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALL = "(all)"
ROUTE_METRICS = ("groundedness", "context_precision", "context_recall", "answer_similarity")


@dataclass
class JudgeScores:
    """LLM-judged scores, one row per question and one column per run."""

    candidate: np.ndarray
    production: np.ndarray | None


@dataclass
class LLMReport:
    """Candidate and production answers to the same questions (production None: first release)."""

    candidate: pd.DataFrame
    production: pd.DataFrame | None
    candidate_version: str
    production_version: str | None
    candidate_model: str
    production_model: str | None = None
    contexts: dict[str, str] | None = None
    resamples: int = 2000
    seed: int = 0
    judge: JudgeScores | None = None

    def __post_init__(self) -> None:
        if self.production is not None:
            same = list(self.candidate["question_id"]) == list(self.production["question_id"])
            if not same:
                raise ValueError(
                    "candidate and production answers must cover the same questions in the "
                    "same order: evaluate both on one RAG set"
                )

    def paired(self, metric: str, routes: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(candidate, production) values of `metric`, for all questions and per route."""
        assert self.production is not None
        c, b = self.candidate, self.production
        out = {ALL: (c[metric].to_numpy(float), b[metric].to_numpy(float))}
        if routes:
            for route in dict.fromkeys(c["route"]):
                mask = (c["route"] == route).to_numpy()
                out[route] = (c[metric].to_numpy(float)[mask], b[metric].to_numpy(float)[mask])
        return out

    def route_rows(self, metric: str) -> list[dict]:
        """The candidate's mean `metric` per route (no comparison)."""
        grouped = self.candidate.groupby("route", sort=False)[metric]
        return [
            {"route": route, "candidate": float(mean), "n": int(n)}
            for (route, mean), n in zip(grouped.mean().items(), grouped.size(), strict=True)
        ]

    def route_table(self) -> pd.DataFrame:
        """Per route and overall: candidate and production means of every measurement."""
        columns = [*ROUTE_METRICS, "completion_tokens", "prompt_tokens", "ttft_ms", "latency_ms"]
        frames = {"candidate": self.candidate}
        if self.production is not None:
            frames["production"] = self.production
        rows = []
        for role, frame in frames.items():
            for route, part in [(ALL, frame), *frame.groupby("route", sort=False)]:
                structured = part[part["structured"]]
                rows.append(
                    {
                        "route": route,
                        "version": f"{role} {frame['version'].iloc[0]}",
                        "n": len(part),
                        **{c: float(part[c].mean()) for c in columns[:6]},
                        "ttft_p95": float(np.percentile(part["ttft_ms"], 95)),
                        "latency_p95": float(np.percentile(part["latency_ms"], 95)),
                        "json_valid": float(structured["json_valid"].mean())
                        if len(structured)
                        else np.nan,
                        "schema_valid": float(structured["schema_valid"].mean())
                        if len(structured)
                        else np.nan,
                    }
                )
        return pd.DataFrame(rows).sort_values(["route", "version"], kind="stable")

    def worst_answers(self, metric: str = "groundedness", limit: int = 10) -> list[dict]:
        """The candidate's lowest-scoring answers, with their context and why they scored low."""
        frame = self.candidate.sort_values([metric, "question_id"], kind="stable").head(limit)
        out = []
        for row in frame.itertuples():
            if getattr(row, metric) >= 1.0:
                break
            context = " | ".join(
                (self.contexts or {}).get(i, i)[:160] for i in row.retrieved_ids.split(",")
            )
            out.append(
                {
                    "question_id": row.question_id,
                    "route": row.route,
                    metric: round(float(getattr(row, metric)), 3),
                    "answer": row.answer[:300],
                    "context": context[:400],
                    "why": row.unsupported or row.structured_problem or f"low {metric}",
                }
            )
        return out

    def flagged_answers(self, limit: int = 15) -> pd.DataFrame:
        """Answers flagged by the groundedness proxy or the structured checks, worst first."""
        c = self.candidate
        broken = c["schema_valid"].map(lambda v: v is False).astype(bool)
        failing = c[(c["groundedness"] < 1.0) | broken]
        failing = failing.sort_values(["groundedness", "question_id"], kind="stable").head(limit)
        rows = []
        for row in failing.itertuples():
            rows.append(
                {
                    "question": row.question_id,
                    "route": row.route,
                    "groundedness": round(row.groundedness, 3),
                    "answer": row.answer[:200],
                    "retrieved context": " | ".join(
                        (self.contexts or {}).get(i, i)[:120] for i in row.retrieved_ids.split(",")
                    ),
                    "why flagged": row.unsupported or row.structured_problem,
                }
            )
        return pd.DataFrame(rows)


def distribution_plot(report: LLMReport) -> bytes:
    """Histograms of completion tokens, time to first token and latency, both versions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml_release.evaluation.report import png

    panels = [
        ("completion_tokens", "completion tokens"),
        ("ttft_ms", "time to first token (ms)"),
        ("latency_ms", "latency (ms)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    frames = [("candidate " + report.candidate_version, report.candidate, "#fc8d62")]
    if report.production is not None:
        frames.insert(
            0, ("production " + str(report.production_version), report.production, "#8da0cb")
        )
    for ax, (column, title) in zip(axes, panels, strict=True):
        values = np.concatenate([f[column].to_numpy(float) for _n, f, _c in frames])
        bins = np.histogram_bin_edges(values, bins=20)
        for label, frame, color in frames:
            ax.hist(frame[column], bins=bins, alpha=0.6, label=label, color=color)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    # A fixed corner: "best" searches the bars for room, slow enough on a busy machine that
    # Matplotlib warns about it.
    axes[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return png(fig)
