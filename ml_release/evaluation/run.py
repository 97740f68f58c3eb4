"""Judging every model-quality gate of the spec, and keeping the results for the checks.

The `evaluation_report` asset computes all gate results in one pass (the comparisons are the
expensive part) and stores them with `ml_release.gates.store`; the checks read them back.
"""

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.evaluation import gates
from ml_release.evaluation.data import EvalSet, PredictionTables, load_eval_sets
from ml_release.evaluation.report import (
    Evaluation,
    forest_plots,
    metrics_table,
    reliability_plot,
)
from ml_release.gates.catalog import CATALOG, EVALUATION_FAMILIES
from ml_release.gates.model_quality import METRIC_DIRECTIONS
from ml_release.gates.result import GateResult
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.warehouse import Warehouse


def model_gates(spec: ReleaseSpec) -> list[GateSpec]:
    """The spec's model-quality (ranking, regression, multi-class) gates, in spec order."""
    return [g for g in spec.gates if CATALOG[g.name].family in EVALUATION_FAMILIES]


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


def evaluate(
    warehouse: Warehouse, spec: ReleaseSpec, tables: PredictionTables, trivial_baseline: bool
) -> Evaluation:
    """Every model-quality gate judged on the paired sets, with the metrics and the plots."""
    sets = load_eval_sets(warehouse, tables, spec.data.segments, trivial_baseline)
    judged = model_gates(spec)
    results = [judge(gate, sets, spec) for gate in judged]
    images = {f"reliability ({name})": reliability_plot(data) for name, data in sets.items()}
    return Evaluation(
        f"{spec.model.name}: evaluation",
        results,
        metrics_table(sets, spec.evaluation.threshold),
        "metrics",
        images | forest_plots(judged, results),
    )


__all__ = ["evaluate", "judge", "keys", "model_gates"]
