"""Printing release outcomes for people: the verdict table and error summaries."""

from rich.console import Console
from rich.table import Table

from ml_release.errors import failure_advice

STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
UNGATED = (
    "allow_ungated: true - this spec has no must_pass model-quality gate: a model that "
    "predicts badly is not blocked"
)


def judged_on(gate: dict) -> str:
    """The dataset of a gate row, with the evaluation set it judged when that says more."""
    eval_set = gate.get("eval_set")
    return (
        f"{gate['dataset']} ({eval_set})"
        if eval_set not in (None, gate["dataset"])
        else (gate["dataset"])
    )


def verdict_table(title: str, gates: list[dict], ungated: bool = False) -> Table:
    """One row per gate: dataset (and evaluation set), verdict, effect, and its summary.

    `ungated`: the spec says `allow_ungated: true`; the table says what that means.
    """
    table = Table(title=title, title_justify="left", show_lines=False)
    if ungated:
        table.caption = UNGATED
        table.caption_style = "bold yellow"
    for column in ("gate", "dataset", "verdict", "effect", "evidence"):
        table.add_column(column, overflow="fold")
    for gate in sorted(gates, key=lambda g: (g["passed"], not g["blocking"], g["dataset"])):
        if gate["passed"]:
            effect = "-"
        else:
            effect = "[bold red]BLOCKS[/]" if gate["blocking"] else "[yellow]warns[/]"
        style = STYLE.get(gate["verdict"], "white")
        table.add_row(
            gate["gate"], judged_on(gate), f"[{style}]{gate['verdict']}[/]", effect, gate["summary"]
        )
    return table


def print_outcome(
    console: Console, title: str, outcome, home: str = "", ungated: bool = False
) -> None:
    """Print the verdict table, failed steps, and the one-line conclusion (and the home).

    `ungated`: the spec says `allow_ungated: true`, shown even when no gate ran.
    """
    if outcome.gates:
        console.print(verdict_table(title, outcome.gates, ungated))
    elif ungated:
        console.print(f"[bold yellow]{UNGATED}[/]")
    advice = set()
    for failure in outcome.failures:
        console.print(f"[bold red]error in {failure['step']}[/] ({failure['error']}):")
        console.print(failure["message"], markup=False, highlight=False)
        advice.add(failure_advice(failure["error"], failure["message"]))
    for line in sorted(advice - {None}):
        console.print(f"[bold red]{line}[/]", highlight=False)
    if outcome.skipped:
        console.print(f"not run (upstream blocked or failed): {', '.join(outcome.skipped)}")
    candidate = outcome.candidate
    if outcome.prepared and not candidate:
        console.print(f"candidate: {outcome.prepared}", highlight=False)
    if candidate:
        console.print(
            f"candidate: {candidate.get('candidate_version')} "
            f"(sha256 {str(candidate.get('candidate_digest'))[:12]}, {candidate.get('source')})"
        )
    if outcome.refusal:
        console.print(f"[bold red]promotion refused[/]: {outcome.refusal}", highlight=False)
    if outcome.stale:
        console.print(f"[bold yellow]{outcome.stale}[/]", highlight=False)
    if outcome.failures:
        verdict = "[bold red]ERROR[/]: the release could not be judged"
    elif outcome.blocked:
        names = ", ".join(f"{g['gate']} ({judged_on(g)})" for g in outcome.blocked)
        verdict = f"[bold red]BLOCKED[/] by {names}; production unchanged"
    elif outcome.refusal:
        verdict = "[bold red]BLOCKED[/] at promotion; production unchanged"
    elif outcome.stale:
        verdict = "[bold yellow]STALE[/]: production moved since the candidate was judged; re-run"
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
    if home:
        console.print(home, highlight=False)


def _when(event) -> str:
    return event.recorded_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


HISTORY_STYLE = {
    "promoted": "green",
    "overridden": "magenta",
    "rolled_back": "yellow",
    "blocked": "red",
    "refused": "red",
    "errored": "red",
    "stale": "yellow",
    "gated": "cyan",
    "canary_aborted": "red",
}


def history_table(model: str, registry) -> Table:
    """Production's timeline and every run's outcome, numbered in order, from the ledger."""
    from ml_release.registry import PRODUCTION_EVENTS, RUN_EVENTS

    table = Table(title=f"{model}: production history", title_justify="left")
    for column in ("#", "ledger", "when", "event", "version", "production before", "actor"):
        table.add_column(column, overflow="fold")
    table.add_column("reason", overflow="fold")
    moves = set(PRODUCTION_EVENTS)
    for number, event in enumerate(registry.events(model, (*PRODUCTION_EVENTS, *RUN_EVENTS)), 1):
        version = event.version or "-"
        table.add_row(
            str(number),
            f"#{event.seq}",
            _when(event),
            f"[{HISTORY_STYLE.get(event.event, 'white')}]{event.event}[/]",
            version if event.event in moves else f"({version} not live)",
            event.from_version or "-" if event.event in moves else "",
            event.actor,
            event.reason or "",
        )
    return table


def status_table(model: str, registry, store_root, latest: int = 5) -> Table:
    """Production and the rollback target, verified, then the latest registered versions.

    The production and rollback-target rows are always shown, however old they are.
    """
    from ml_release.registry import PRODUCTION
    from ml_release.rollback import artifact_problem, next_known_good

    registry = registry.state(model)  # one read for the whole table
    production = registry.alias(model, PRODUCTION)
    target = next_known_good(registry, store_root, model) if production else None
    last_event: dict[str, object] = {}
    for event in registry.events(model):
        if event.event != "registered" and event.version:
            last_event[event.version] = event
    table = Table(
        title=f"{model}: production {production or '(none)'}, rollback target {target or '(none)'}",
        title_justify="left",
    )
    for column in ("version", "digest", "registered", "role", "artifact", "last event"):
        table.add_column(column, overflow="fold")
    versions = registry.versions(model)
    pinned = [v for v in versions if v.version in (production, target)]
    shown = pinned + [v for v in versions[-latest:] if v not in pinned]
    problems = []
    for version in shown:
        role = {production: "production", target: "rollback target"}.get(version.version, "")
        check = "-"
        if role:
            problem = artifact_problem(registry, store_root, model, version.version)
            check = "[green]verified[/]" if not problem else "[red]does not verify[/] (below)"
            if problem:  # in full under the table, where it wraps as text
                problems.append(f"[red]{version.version}[/]: {problem}")
        event = last_event.get(version.version)
        table.add_row(
            version.version,
            version.digest[:12],
            version.registered_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            role,
            check,
            f"{event.event}: {event.reason}" if event else "not gated yet",
        )
    if problems:
        table.caption = "\n".join(problems)
        table.caption_justify = "left"
    return table
