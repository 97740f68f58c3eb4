"""Judging every model-quality gate of the spec, and keeping the results for the checks.

The `evaluation_report` asset computes all gate results in one pass (the comparisons are the
expensive part) and stores them in the warehouse table `_gate_results` keyed by run; the checks
read them back for the same run. A check that finds no result for its run fails.
"""

import json
from datetime import UTC, datetime

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.evaluation import gates
from ml_release.evaluation.data import EvalSet
from ml_release.gates.catalog import CATALOG
from ml_release.gates.model_quality import METRIC_DIRECTIONS
from ml_release.gates.result import GateResult
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.warehouse import Warehouse

RESULTS_TABLE = "_gate_results"


def model_gates(spec: ReleaseSpec) -> list[GateSpec]:
    """The spec's model-quality gates, in spec order."""
    return [g for g in spec.gates if CATALOG[g.name].family == "model_quality"]


def judge(gate: GateSpec, sets: dict[str, EvalSet], spec: ReleaseSpec) -> GateResult:
    """One gate's result."""
    if gate.name == "valid_predictions":
        result = gates.valid_predictions(gate, sets)
    else:
        eval_set = gate.params.eval_set  # type: ignore[attr-defined]
        if eval_set not in sets:
            raise DataInputError(
                f"gate {gate.name}: evaluation set {eval_set!r} has no labelled rows "
                f"(found: {', '.join(sets) or 'none'})"
            )
        data, settings = sets[eval_set], spec.evaluation
        name = gate.name
        if name == "calibration":
            result = gates.calibration(gate, data, settings)
        elif name.startswith("segment_"):
            metric = name.removeprefix("segment_").removesuffix("_vs_baseline")
            result = gates.segment_vs_baseline(gate, metric, data, settings, spec.data.segments)
        elif name.endswith("_vs_baseline"):
            result = gates.vs_baseline(gate, name.removesuffix("_vs_baseline"), data, settings)
        else:
            metric = name.split("_", 1)[1]
            assert metric in METRIC_DIRECTIONS, name  # the catalog only makes these names
            result = gates.floor(gate, metric, data, settings)
    result.spec_hash = spec.spec_hash
    return result


def store_results(warehouse: Warehouse, run_id: str, results: list[GateResult]) -> None:
    """Keep the results of one run for its checks."""
    with warehouse.transaction() as connection:
        connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{RESULTS_TABLE}" (run_id VARCHAR, gate VARCHAR, '
            "result VARCHAR, stored_at TIMESTAMPTZ)"
        )
        connection.execute(f'DELETE FROM "{RESULTS_TABLE}" WHERE run_id = ?', [run_id])
        for result in results:
            connection.execute(
                f'INSERT INTO "{RESULTS_TABLE}" VALUES (?, ?, ?, ?)',
                [run_id, result.gate, json.dumps(result.to_dict()), datetime.now(UTC)],
            )


def load_results(warehouse: Warehouse, run_id: str) -> dict[str, GateResult]:
    """The results `evaluation_report` stored for `run_id`, by gate name."""
    if not warehouse.exists(RESULTS_TABLE):
        return {}
    with warehouse.connect() as connection:
        rows = connection.execute(
            f'SELECT gate, result FROM "{RESULTS_TABLE}" WHERE run_id = ?', [run_id]
        ).fetchall()
    return {gate: GateResult.from_dict(json.loads(text)) for gate, text in rows}


__all__ = ["judge", "keys", "load_results", "model_gates", "store_results"]
