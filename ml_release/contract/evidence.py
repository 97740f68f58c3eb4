"""What every contract gate looks at, and the shared way its rows become a verdict."""

from dataclasses import dataclass

import duckdb

from ml_release.contract.profile import Profile
from ml_release.gates.result import GateResult, Verdict
from ml_release.identifiers import quote
from ml_release.spec import GateSpec, ReleaseSpec

MAX_EXAMPLES = 10


@dataclass
class ContractInputs:
    """What every contract gate looks at."""

    spec: ReleaseSpec
    target_name: str
    reference: Profile
    target: Profile
    connection: duckdb.DuckDBPyConnection
    relation: tuple[str, list]
    id_columns: list[str]


def verdict_of(rows: list[dict]) -> Verdict:
    """Fail if any column failed; inconclusive if any could not be evaluated; else pass."""
    statuses = {r["status"] for r in rows}
    if "fail" in statuses:
        return Verdict.FAIL
    if "not evaluated" in statuses or not rows:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def not_evaluated(column: str, reason: str) -> dict:
    """The row of a column a gate could not judge (it never counts as a pass)."""
    return {"column": column, "status": "not evaluated", "reason": reason}


def worst_row(rows: list[dict], key: str) -> dict | None:
    """The row with the largest `key`."""
    scored = [r for r in rows if r.get(key) is not None]
    return max(scored, key=lambda r: r[key]) if scored else None


def failing_examples(inputs: ContractInputs, condition: str, columns: list[str]) -> list[dict]:
    """Up to MAX_EXAMPLES rows of the target matching `condition`, with their ids."""
    shown = [c for c in inputs.id_columns if c not in columns] + columns
    select = ", ".join(quote(c) for c in shown)
    rows = inputs.connection.execute(
        f"SELECT {select} FROM {inputs.relation[0]} WHERE {condition} LIMIT {MAX_EXAMPLES}",
        inputs.relation[1],
    ).fetchall()
    return [dict(zip(shown, row, strict=True)) for row in rows]


def column_result(
    inputs: ContractInputs,
    gate: GateSpec,
    rows: list[dict],
    method: str,
    key: str,
    limit_key: str,
    summary_ok: str,
    summary_fail: str,
) -> GateResult:
    """A gate result from per-column rows: the worst column is the headline."""
    verdict = verdict_of(rows)
    worst = worst_row(rows, key) or {}
    failing = [r["column"] for r in rows if r["status"] == "fail"]
    skipped = [r["column"] for r in rows if r["status"] == "not evaluated"]
    if failing:
        summary = summary_fail.format(columns=", ".join(failing))
    elif skipped:
        summary = f"could not evaluate {', '.join(skipped)} (see feature_schema)"
    else:
        summary = summary_ok
    return GateResult(
        gate=gate.name,
        target=inputs.target_name,
        verdict=verdict,
        summary=summary,
        method=method,
        observed=worst.get(key),
        baseline=worst.get(f"reference_{key}", 0.0 if worst else None),
        threshold=worst.get(limit_key),
        support={"rows": inputs.target.rows, "reference_rows": inputs.reference.rows},
        rows=rows,
    )


def attach_plot(result: GateResult, panels: list[dict], title: str) -> None:
    """Plot the most drifted columns, only when the gate did not pass (where people look)."""
    if panels and result.verdict is not Verdict.PASS:
        from ml_release.plots import distribution_plot  # matplotlib only when a plot is drawn

        top = sorted(panels, key=lambda p: -p["value"])[:4]
        result.plot_png = distribution_plot(top, title)
