"""Gate results kept between a report asset and its checks, in the warehouse, keyed by run.

`evaluation_report` and `serving_report` compute all their gates in one pass (the measurements
are the expensive part) and store the results in `_gate_results`; their checks read them back
for the same run. Results are keyed by the gate entry's id (its check name): one gate name may
be judged on several evaluation sets. A check that finds no result for its run fails.
"""

import json
from datetime import UTC, datetime

from ml_release.gates.result import GateResult
from ml_release.warehouse import Warehouse

RESULTS_TABLE = "_gate_results"


def store_results(
    warehouse: Warehouse, run_id: str, ids: list[str], results: list[GateResult]
) -> None:
    """Keep the results of one run for its checks; `ids[i]` is the id of `results[i]`'s gate."""
    if len(ids) != len(results):
        raise ValueError(f"{len(results)} gate results for {len(ids)} gate ids")
    with warehouse.transaction() as connection:
        connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{RESULTS_TABLE}" (run_id VARCHAR, gate VARCHAR, '
            "result VARCHAR, stored_at TIMESTAMPTZ)"
        )
        for gate_id in ids:  # a rerun replaces; other reports' results in the run stay
            connection.execute(
                f'DELETE FROM "{RESULTS_TABLE}" WHERE run_id = ? AND gate = ?', [run_id, gate_id]
            )
        for gate_id, result in zip(ids, results, strict=True):
            connection.execute(
                f'INSERT INTO "{RESULTS_TABLE}" VALUES (?, ?, ?, ?)',
                [run_id, gate_id, json.dumps(result.to_dict()), datetime.now(UTC)],
            )


def load_results(warehouse: Warehouse, run_id: str) -> dict[str, GateResult]:
    """The results stored for `run_id`, by gate id."""
    if not warehouse.exists(RESULTS_TABLE):
        return {}
    with warehouse.connect() as connection:
        rows = connection.execute(
            f'SELECT gate, result FROM "{RESULTS_TABLE}" WHERE run_id = ?', [run_id]
        ).fetchall()
    return {gate: GateResult.from_dict(json.loads(text)) for gate, text in rows}
