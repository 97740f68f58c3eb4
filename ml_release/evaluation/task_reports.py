"""The evaluation reports of the regression and multi-class tasks: measures, gates, tables.

`evaluate_regression` and `evaluate_multiclass` are what `evaluation_report` calls for those
tasks (`ml_release.evaluation.tasks`): load the paired sets once, judge every gate, and show
each metric of both models per evaluation set (and per class for multi-class).
"""

import re

import numpy as np
import pandas as pd

from ml_release.errors import DataInputError
from ml_release.evaluation.data import EvalSet, PredictionTables
from ml_release.evaluation.report import Evaluation, forest_plots
from ml_release.evaluation.run import model_gates
from ml_release.evaluation.task_data import (
    MulticlassSet,
    load_multiclass_sets,
    load_regression_sets,
)
from ml_release.evaluation.task_gates import Measure, judge_task_gate
from ml_release.gates.result import GateResult, Verdict
from ml_release.gates.task_catalog import METHODS, MULTICLASS_DIRECTIONS, REGRESSION_DIRECTIONS
from ml_release.metrics.multiclass import (
    DEFAULT_K,
    class_recall,
    log_losses,
    macro_f1,
    predicted,
    top_k_hits,
)
from ml_release.metrics.regression import DEFAULT_QUANTILE, from_row_losses, row_losses
from ml_release.spec import EvaluationSpec, GateSpec, ReleaseSpec
from ml_release.stats import paired_mean_delta
from ml_release.stats.tasks import paired_abs_mean_delta, paired_macro_f1_delta, paired_rmse_delta
from ml_release.warehouse import Warehouse

REGRESSION_MEANS = "NaN or infinite"
MULTICLASS_MEANS = "not finite probabilities"
GOOD = {
    REGRESSION_MEANS: "every prediction is a finite number",
    MULTICLASS_MEANS: "every row of probabilities is finite and within [0, 1]",
}


def gate_metric(name: str) -> str:
    """The metric a gate name judges (`segment_mae_vs_baseline` -> `mae`)."""
    return re.sub(r"^(segment_|min_|max_)|_vs_baseline$", "", name)


def regression_measure(metric: str, settings: EvaluationSpec, quantile: float) -> Measure:
    """How `metric` is computed and compared on a regression set."""

    def losses(data: EvalSet, mask: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return row_losses(metric, data.y[mask], scores[mask], quantile)

    def value(data: EvalSet, mask: np.ndarray) -> float:
        return from_row_losses(metric, float(losses(data, mask, data.candidate).mean()))

    def compare(data: EvalSet, mask: np.ndarray, confidence: float):
        c, b = losses(data, mask, data.candidate), losses(data, mask, data.baseline)
        if metric == "rmse":
            return paired_rmse_delta(c, b, confidence)
        if metric == "calibration_in_the_large":
            draws = 2 * settings.bootstrap_resamples
            return paired_abs_mean_delta(c, b, confidence, draws=draws, seed=settings.seed)
        return paired_mean_delta(c, b, confidence, metric)

    return Measure(metric, REGRESSION_DIRECTIONS[metric], value, compare, METHODS[metric])


def multiclass_measure(metric: str, settings: EvaluationSpec, k: int) -> Measure:
    """How `metric` is computed and compared on a multi-class set."""

    def per_row(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return log_losses(y, p) if metric == "log_loss" else top_k_hits(y, p, k)

    def value(data: EvalSet, mask: np.ndarray) -> float:
        y, p = data.y[mask], data.candidate[mask]
        if metric == "macro_f1":
            return macro_f1(y, p)
        if metric == "class_recall":
            return float((predicted(p) == y).mean())  # the mask holds one class's rows
        return float(per_row(y, p).mean())

    def compare(data: EvalSet, mask: np.ndarray, confidence: float):
        y, c, b = data.y[mask], data.candidate[mask], data.baseline[mask]
        if metric == "macro_f1":
            return paired_macro_f1_delta(
                y,
                predicted(c),
                predicted(b),
                c.shape[1],
                confidence,
                settings.bootstrap_resamples,
                settings.seed,
            )
        if metric == "class_recall":  # the mask holds one class's rows: hit = predicted it
            hit_c, hit_b = (predicted(c) == y).astype(float), (predicted(b) == y).astype(float)
            return paired_mean_delta(hit_c, hit_b, confidence, "class_recall")
        name = "log_loss" if metric == "log_loss" else f"top_{k}_accuracy"
        return paired_mean_delta(per_row(y, c), per_row(y, b), confidence, name)

    return Measure(metric, MULTICLASS_DIRECTIONS[metric], value, compare, METHODS[metric])


def _regression(gate: GateSpec, settings: EvaluationSpec) -> Measure:
    quantile = getattr(gate.params, "quantile", DEFAULT_QUANTILE)
    return regression_measure(gate_metric(gate.name), settings, quantile)


def _multiclass(gate: GateSpec, settings: EvaluationSpec) -> Measure:
    k = getattr(gate.params, "k", DEFAULT_K)
    return multiclass_measure(gate_metric(gate.name), settings, k)


def valid_predictions(gate: GateSpec, sets: dict[str, EvalSet], means: str) -> GateResult:
    """`valid_predictions`: every candidate score usable (rows named when not)."""
    examples, total = [], 0
    for data in sets.values():
        total += len(data.invalid)
        examples += [
            {"eval_set": data.name, "row_id": str(data.row_ids[i]), "score": str(data.candidate[i])}
            for i in data.invalid
        ]
    return GateResult(
        gate.name,
        "all",
        Verdict.FAIL if total else Verdict.PASS,
        f"{total} scores are {means}, e.g. rows " + ", ".join(e["row_id"] for e in examples[:5])
        if total
        else GOOD[means],
        GOOD[means].removeprefix("every ").split(" is ", 1)[-1],
        observed=float(total),
        threshold=0.0,
        baseline=0.0,
        support={"rows": sum(len(d.y) for d in sets.values())},
        examples=examples[: gate.params.examples],  # type: ignore[attr-defined]
    )


def _judge_all(spec: ReleaseSpec, sets: dict[str, EvalSet], measures, means: str):
    gates = model_gates(spec)
    results = []
    for gate in gates:
        if gate.name == "valid_predictions":
            result = valid_predictions(gate, sets, means)
        else:
            eval_set = gate.params.eval_set  # type: ignore[attr-defined]
            if eval_set not in sets:
                raise DataInputError(
                    f"gate {gate.name}: evaluation set {eval_set!r} has no labelled rows "
                    f"(found: {', '.join(sets) or 'none'})"
                )
            result = judge_task_gate(
                gate, measures, sets[eval_set], spec.evaluation, spec.data.segments, means
            )
        result.spec_hash = spec.spec_hash
        results.append(result)
    return gates, results


def _quantiles(spec: ReleaseSpec) -> list[float]:
    found = {g.params.quantile for g in spec.gates if hasattr(g.params, "quantile")}  # type: ignore[attr-defined]
    return sorted(found) or [DEFAULT_QUANTILE]


def regression_table(sets: dict[str, EvalSet], spec: ReleaseSpec) -> pd.DataFrame:
    """Every regression metric of both models on every evaluation set (valid rows only)."""
    records = []
    for data in sets.values():
        keep = np.isfinite(data.candidate) & np.isfinite(data.baseline)
        for metric in REGRESSION_DIRECTIONS:
            for q in _quantiles(spec) if metric == "pinball_loss" else [DEFAULT_QUANTILE]:
                label = f"pinball_loss@{q:g}" if metric == "pinball_loss" else metric
                values = {
                    model: from_row_losses(
                        metric, float(row_losses(metric, data.y[keep], s[keep], q).mean())
                    )
                    for model, s in (("candidate", data.candidate), ("baseline", data.baseline))
                }
                records.append({"eval_set": data.name, "metric": label, **values})
    table = pd.DataFrame(records)
    table["delta"] = table["candidate"] - table["baseline"]
    return table


def multiclass_table(sets: dict[str, EvalSet], spec: ReleaseSpec) -> pd.DataFrame:
    """Log loss, macro-F1, top-k accuracy and every class's recall of both models."""
    ks = sorted({g.params.k for g in spec.gates if hasattr(g.params, "k")}) or [DEFAULT_K]  # type: ignore[attr-defined]
    records = []
    for data in sets.values():
        assert isinstance(data, MulticlassSet)
        keep = np.ones(len(data.y), bool)
        keep[data.invalid] = False
        y = data.y[keep]
        for model, scores in (
            ("candidate", data.candidate[keep]),
            ("baseline", data.baseline[keep]),
        ):
            values = {
                "log_loss": float(log_losses(y, scores).mean()),
                "macro_f1": macro_f1(y, scores),
            }
            values |= {f"top_{k}_accuracy": float(top_k_hits(y, scores, k).mean()) for k in ks}
            values |= {
                f"recall[{name}]": class_recall(y, scores, i) for i, name in enumerate(data.classes)
            }
            records += [
                {"eval_set": data.name, "model": model, "metric": m, "value": v}
                for m, v in values.items()
            ]
    table = pd.DataFrame(records)
    wide = table.pivot_table(
        index=["eval_set", "metric"], columns="model", values="value", aggfunc="first", sort=False
    ).reset_index()
    wide["delta"] = wide["candidate"] - wide["baseline"]
    return wide


def evaluate_regression(
    warehouse: Warehouse, spec: ReleaseSpec, tables: PredictionTables, trivial_baseline: bool
):
    """Every regression gate judged on the paired sets, with the metrics and forest plots."""
    sets = load_regression_sets(warehouse, tables, spec.data.segments, trivial_baseline)
    gates, results = _judge_all(spec, sets, _regression, REGRESSION_MEANS)
    return Evaluation(
        f"{spec.model.name}: regression",
        results,
        regression_table(sets, spec),
        "metrics",
        forest_plots(gates, results),
    )


def evaluate_multiclass(
    warehouse: Warehouse, spec: ReleaseSpec, tables: PredictionTables, trivial_baseline: bool
):
    """Every multi-class gate judged on the paired sets, with the metrics and forest plots."""
    sets = load_multiclass_sets(warehouse, tables, spec.data.segments, trivial_baseline)
    gates, results = _judge_all(spec, sets, _multiclass, MULTICLASS_MEANS)
    return Evaluation(
        f"{spec.model.name}: multi-class",
        results,
        multiclass_table(sets, spec),
        "metrics",
        forest_plots(gates, results),
    )
