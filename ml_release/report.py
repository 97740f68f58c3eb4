"""Printing release outcomes for people: the verdict table and error summaries."""

from rich.console import Console
from rich.table import Table

STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow"}


def verdict_table(title: str, gates: list[dict]) -> Table:
    """One row per gate: dataset, verdict, whether it blocks, and its summary."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("gate", "dataset", "verdict", "effect", "evidence"):
        table.add_column(column, overflow="fold")
    for gate in sorted(gates, key=lambda g: (g["passed"], not g["blocking"], g["dataset"])):
        if gate["passed"]:
            effect = "-"
        else:
            effect = "[bold red]BLOCKS[/]" if gate["blocking"] else "[yellow]warns[/]"
        style = STYLE.get(gate["verdict"], "white")
        table.add_row(
            gate["gate"], gate["dataset"], f"[{style}]{gate['verdict']}[/]", effect, gate["summary"]
        )
    return table


def print_outcome(console: Console, title: str, outcome) -> None:
    """Print the verdict table, failed steps, and the one-line conclusion."""
    if outcome.gates:
        console.print(verdict_table(title, outcome.gates))
    for failure in outcome.failures:
        console.print(f"[bold red]error in {failure['step']}[/] ({failure['error']}):")
        console.print(failure["message"], markup=False, highlight=False)
    if outcome.skipped:
        console.print(f"not run (upstream blocked or failed): {', '.join(outcome.skipped)}")
    if outcome.failures:
        verdict = "[bold red]ERROR[/]: the release could not be judged"
    elif outcome.blocked:
        names = ", ".join(f"{g['gate']} ({g['dataset']})" for g in outcome.blocked)
        verdict = f"[bold red]BLOCKED[/] by {names}"
    else:
        verdict = "[bold green]PASSED[/]: every blocking gate passed"
    console.print(f"{verdict}  (run {outcome.run_id}, exit code {outcome.exit_code})")
