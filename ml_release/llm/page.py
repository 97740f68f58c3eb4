"""Evidence of an LLM release for people: Markdown tables and a self-contained HTML page."""

import base64
import html

import pandas as pd

from ml_release.gates.result import GateResult
from ml_release.llm.report import LLMReport


def table_markdown(frame: pd.DataFrame, empty: str = "_none_") -> str:
    """A DataFrame as Markdown (pipes and newlines in cells escaped)."""
    if frame.empty:
        return empty
    clean = frame.apply(
        lambda c: (
            c.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
            if c.dtype == object
            else c
        )
    )
    return clean.to_markdown(index=False, floatfmt=".3f")


def gates_markdown(results: list[GateResult]) -> str:
    """One bullet per gate result."""
    return "\n".join(f"- **{r.gate}**: {r.verdict.value} - {r.summary}" for r in results)


def html_page(title: str, report: LLMReport, results: list[GateResult], plot: bytes) -> str:
    """The LLM release report as one HTML page."""
    parts = [
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>",
        f"<body style='font-family:sans-serif'><h1>{html.escape(title)}</h1><h2>Gates</h2><ul>",
        *(
            f"<li><b>{html.escape(r.gate)}</b>: {r.verdict.value} - {html.escape(r.summary)}</li>"
            for r in results
        ),
        "</ul><h2>Per route</h2>",
        report.route_table().to_html(index=False, float_format=lambda v: f"{v:.3f}"),
        "<h2>Flagged answers</h2>",
        report.flagged_answers().to_html(index=False),
        "<h2>Tokens and latency</h2>",
        f"<img alt='distributions' src='data:image/png;base64,{base64.b64encode(plot).decode()}'>",
        "</body></html>",
    ]
    return "\n".join(parts)
