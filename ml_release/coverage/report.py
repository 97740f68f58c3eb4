"""The coverage matrix as a terminal table, Markdown and HTML."""

import html
import re
from pathlib import Path

from rich.table import Table

from ml_release.coverage.result import CoverageResult, ModeRun

SYMBOL = {"blocked": "BLOCK", "warned": "warn", "passed": ".", "not run": ""}
STYLE = {"blocked": "bold red", "warned": "yellow", "passed": "dim", "not run": "dim"}


def verdict(result: CoverageResult, run: ModeRun) -> str:
    """What the row concludes: caught, ERRORED, NOT CAUGHT; the control: passed or not.

    An error counts as caught only for a mode that declares it (`expects_error`); any other
    error is a crash and says so, whatever the gates did.
    """
    if run.mode == "control":
        return {
            "passed": "passed",
            "errored": "ERRORED (an error stopped a healthy release)",
        }.get(run.outcome, "BLOCKED (a gate blocks a healthy release)")
    if run.outcome == "errored":
        return "ERRORED (an undeclared error stopped it: not counted as caught)"
    if run.caught:
        return "caught" + (" (the declared error)" if run.outcome == "expected error" else "")
    required = run.mode in result.required
    return "NOT CAUGHT" + (" (required)" if required else "")


def _stopped(run: ModeRun) -> str:
    return "; ".join(f"{f['step']}: {f['error']}" for f in run.failures)


def _rows(result: CoverageResult) -> list[ModeRun]:
    return [result.control, *result.runs]


TERMINAL = {
    "blocked": "[bold red]■[/]",
    "warned": "[yellow]▲[/]",
    "passed": "[dim]·[/]",
    "not run": "",
}


def terminal_table(result: CoverageResult) -> Table:
    """Failure mode x gate, gates numbered (the legend is the caption) so it fits a terminal."""
    legend = "  ".join(f"{i}={gate}" for i, gate in enumerate(result.gates, 1))
    table = Table(
        title=f"gate coverage of {result.spec_source}: "
        "■ blocked  ▲ warned  · passed  (blank: not run)",
        caption=legend,
        caption_justify="left",
        pad_edge=False,
    )
    table.add_column("failure mode (strength)", overflow="fold", max_width=44)
    for i, _ in enumerate(result.gates, 1):
        table.add_column(str(i), justify="center", min_width=1)
    table.add_column("blocked by", overflow="fold", max_width=28)
    table.add_column("errors", overflow="fold", max_width=24)
    table.add_column("verdict", overflow="fold")
    for run in _rows(result):
        right = run.outcome == "passed" if run.mode == "control" else run.caught
        table.add_row(
            run.title,
            *[TERMINAL[run.cell(g)] for g in result.gates],
            run.stopped_by if run.caught else "",
            _stopped(run),
            ("[green]" if right else "[bold red]") + verdict(result, run) + "[/]",
        )
    return table


def markdown(result: CoverageResult) -> str:
    """The matrix, the sweep and the summary as Markdown."""
    lines = [
        f"# Gate coverage of `{result.spec_source}`",
        "",
        _summary(result),
        "",
        "`BLOCK`: a must_pass gate said no. `warn`: a warning-only gate said no. `.`: passed. "
        "Empty: not run for this mode (gates that start model servers run only for the modes "
        "that target them).",
        "",
        "| failure mode | "
        + " | ".join(f"`{g}`" for g in result.gates)
        + " | blocked by | errors | verdict |",
        "|---|" + "---|" * (len(result.gates) + 3),
    ]
    for run in _rows(result):
        cells = [SYMBOL[run.cell(g)] for g in result.gates]
        lines.append(
            f"| {run.title} | " + " | ".join(cells) + f" | {run.stopped_by if run.caught else ''} "
            f"| {_stopped(run)} | {verdict(result, run)} |"
        )
    if result.skipped:
        lines += ["", "Not applicable to this spec:", ""]
        lines += [f"- `{mode}`: {why}" for mode, why in result.skipped.items()]
    if result.sweeps:
        lines += ["", "## Sensitivity sweep", "", *sweep_lines(result)]
    return "\n".join(lines) + "\n"


def sweep_lines(result: CoverageResult) -> list[str]:
    """Per swept mode: strengths tried (x: blocked) and the smallest that was blocked."""
    lines = [
        "| failure mode | strength | tried | smallest blocked | blocked by |",
        "|---|---|---|---|---|",
    ]
    for mode, runs in result.sweeps.items():
        smallest = result.smallest_blocked(mode)
        tried = ", ".join(f"{r.strength:g}" + (" x" if r.caught else "") for r in runs)
        unit = re.search(r"\(\S+ ([^()]*)\)$", runs[0].title) if runs else None
        by = next((r for r in runs if r.caught), None)
        lines.append(
            f"| `{mode}` | {unit.group(1) if unit else ''} | {tried} | "
            + (f"{smallest:g}" if smallest is not None else "not blocked at any strength tried")
            + f" | {', '.join(by.blocked_by) if by else ''} |"
        )
    return lines


def _summary(result: CoverageResult) -> str:
    caught = sum(run.caught for run in result.runs)
    control = {"passed": "control passed", "errored": "CONTROL ERRORED"}
    parts = [
        f"{caught} of {len(result.runs)} failure modes blocked, {len(result.errored)} errored",
        control.get(result.control.outcome, "CONTROL BLOCKED"),
        f"{result.seconds:.0f} s",
    ]
    if result.errored:
        parts.append("errored (a crash, not a catch): " + ", ".join(result.errored))
    if result.uncovered:
        parts.append("required but not blocked: " + ", ".join(result.uncovered))
    return "; ".join(parts) + "."


def html_page(result: CoverageResult) -> str:
    """A self-contained HTML page of the matrix."""
    colours = {"blocked": "#f8d0d0", "warned": "#fff1c2", "passed": "#eef7ee", "not run": "#fff"}
    head = "".join(f"<th>{html.escape(g)}</th>" for g in result.gates)
    body = []
    for run in _rows(result):
        cells = "".join(
            f'<td style="background:{colours[c]}">{SYMBOL[c]}</td>'
            for c in (run.cell(g) for g in result.gates)
        )
        by = html.escape(run.stopped_by if run.caught else "")
        stopped, said = html.escape(_stopped(run)), html.escape(verdict(result, run))
        body.append(
            f"<tr><th>{html.escape(run.title)}</th>{cells}<td>{by}</td><td>{stopped}</td>"
            f"<td>{said}</td></tr>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>gate coverage</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:center}"
        "thead th{writing-mode:vertical-rl}</style>"
        f"<h1>Gate coverage of {html.escape(result.spec_source)}</h1>"
        f"<p>{html.escape(_summary(result))}</p>"
        f"<table><thead><tr><th>failure mode</th>{head}<th>blocked by</th><th>errors</th>"
        "<th>verdict</th></tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


def write_reports(result: CoverageResult, folder: Path) -> dict[str, Path]:
    """coverage.md and coverage.html in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / "coverage.md", "html": folder / "coverage.html"}
    paths["markdown"].write_text(markdown(result))
    paths["html"].write_text(html_page(result))
    return paths
