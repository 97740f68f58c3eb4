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
    candidate = outcome.candidate
    if candidate:
        console.print(
            f"candidate: {candidate.get('candidate_version')} "
            f"(sha256 {str(candidate.get('candidate_digest'))[:12]}, {candidate.get('source')})"
        )
    if outcome.refusal:
        console.print(f"[bold red]promotion refused[/]: {outcome.refusal}", highlight=False)
    if outcome.failures:
        verdict = "[bold red]ERROR[/]: the release could not be judged"
    elif outcome.blocked:
        names = ", ".join(f"{g['gate']} ({g['dataset']})" for g in outcome.blocked)
        verdict = f"[bold red]BLOCKED[/] by {names}; production unchanged"
    elif outcome.refusal:
        verdict = "[bold red]BLOCKED[/] at promotion; production unchanged"
    elif outcome.decision:
        decision = outcome.decision
        version = decision.get("candidate_version")
        verdict = {
            "promoted": f"[bold green]PROMOTED[/] {version} to production "
            f"(replaces {decision.get('replaced')})",
            "awaiting canary": f"[green]GATED[/]: {version} passed every offline gate; "
            "`ml-release canary` rolls it out",
            "canary passed": f"[bold green]PROMOTED[/] {version} after the canary",
            "canary aborted": f"[bold red]ABORTED[/]: the canary of {version} failed; traffic "
            "is back on production",
        }.get(decision.get("decision"), f"[green]PASSED[/]: {version} already in production")
    else:
        verdict = "[bold red]NOT RELEASED[/]: the release decision did not run"
    console.print(f"{verdict}  (run {outcome.run_id}, exit code {outcome.exit_code})")


def _when(event) -> str:
    return event.recorded_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def history_table(model: str, registry) -> Table:
    """The production timeline of `model` from the ledger."""
    from ml_release.registry import PRODUCTION_EVENTS

    table = Table(title=f"{model}: production history", title_justify="left")
    for column in ("#", "when", "event", "production", "before", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for event in registry.events(model, (*PRODUCTION_EVENTS, "blocked")):
        style = {"promoted": "green", "rolled_back": "yellow", "blocked": "red"}[event.event]
        table.add_row(
            str(event.seq),
            _when(event),
            f"[{style}]{event.event}[/]",
            event.version if event.event != "blocked" else f"({event.version} refused)",
            event.from_version or "-",
            event.actor,
            event.reason or "",
        )
    return table


def status_table(model: str, registry, latest: int = 5) -> Table:
    """Production, previous, and the latest registered versions with their last verdict."""
    from ml_release.registry import PREVIOUS, PRODUCTION

    production, previous = registry.alias(model, PRODUCTION), registry.alias(model, PREVIOUS)
    last_event: dict[str, object] = {}
    for event in registry.events(model, ("promoted", "blocked", "rolled_back")):
        last_event[event.version] = event
    table = Table(
        title=f"{model}: production {production or '(none)'}, previous {previous or '(none)'}",
        title_justify="left",
    )
    for column in ("version", "digest", "registered", "alias", "last verdict"):
        table.add_column(column, overflow="fold")
    for version in registry.versions(model)[-latest:]:
        alias = {production: "production", previous: "previous"}.get(version.version, "")
        event = last_event.get(version.version)
        verdict = f"{event.event}: {event.reason}" if event else "not gated yet"
        table.add_row(
            version.version,
            version.digest[:12],
            version.registered_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            alias,
            verdict,
        )
    return table
