"""Spec rules of the regression and multi-class tasks, and of `trusted_types:`.

`spec.py` asks this module which gates and sections a task cannot use, so each refusal says at
load time what applies instead, before anything runs.
"""

import re
from typing import Any

from ml_release.gates.catalog import CATALOG

TABULAR_TASKS = ("binary_classification", "multiclass_classification", "regression", "ranking")
# Log loss means the same for two classes or many: one gate name serves both tasks.
MULTICLASS_LOG_LOSS_GATES = {
    name: ("binary_classification", "multiclass_classification")
    for name in ("log_loss_vs_baseline", "segment_log_loss_vs_baseline", "max_log_loss")
}
# Shadow gates that compare predicted labels: a regression has none.
LABEL_GATES = ("shadow_agreement", "segment_flip_rate")
ESTIMATOR_TASKS = {
    "logistic_regression": ("binary_classification", "multiclass_classification", "ranking"),
    "ridge": ("regression",),
}
DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
GATES_BY_TASK = {
    "binary_classification": "roc_auc_vs_baseline, log_loss_vs_baseline, min_roc_auc, ...",
    "multiclass_classification": "log_loss_vs_baseline, macro_f1_vs_baseline, "
    "top_k_accuracy_vs_baseline, class_recall_vs_baseline, their segment_ and floor variants",
    "regression": "mae_vs_baseline, rmse_vs_baseline, pinball_loss_vs_baseline, "
    "calibration_in_the_large_vs_baseline, their segment_ and max_ variants",
}
FAMILY_TASKS = {
    "model_quality": "binary_classification",
    "multiclass": "multiclass_classification",
    "regression": "regression",
}


def check_trusted_types(value: list[str]) -> list[str]:
    """Field validator of `trusted_types:`: full dotted names, each once."""
    bad = [v for v in value if not DOTTED_NAME.match(v)]
    if bad:
        raise ValueError(
            f"{bad} are not full dotted names such as `my_team.encoders.TargetEncoder` "
            "(module path and class or function name)"
        )
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise ValueError(f"{twice} listed more than once: list each type once")
    return value


def other_task_problem(task: str, gate: str, family: str) -> str:
    """Why a gate of another task's family cannot be used by `task`, with what can."""
    owner = FAMILY_TASKS.get(family)
    if owner is not None and task in GATES_BY_TASK:
        return (
            f"{gate!r} is a {owner} gate and does not apply to model.task {task}. Use "
            f"{GATES_BY_TASK[task]} (docs/gates.md)"
        )
    return f"{gate!r} does not apply to model.task {task}"


def task_problems(spec: Any) -> list[str]:
    """Sections and gates the spec's task cannot use, each with the fix."""
    task = spec.model.task
    problems = []
    allowed = ESTIMATOR_TASKS.get(spec.model.estimator)
    if allowed is not None and task != "llm" and task not in allowed:
        problems.append(
            f"model.estimator: {spec.model.estimator} does not fit model.task {task}; use "
            f"{'ridge' if task == 'regression' else 'logistic_regression'}, "
            "hist_gradient_boosting or random_forest"
        )
    problems += _canary_problems(spec.canary, task)
    if task == "regression":
        for i, gate in enumerate(spec.gates):
            if gate.name in LABEL_GATES:
                problems.append(
                    f"gates[{i}]: {gate.name!r} compares predicted labels, which a regression "
                    "does not have; remove it (shadow_error_rate and shadow_latency_vs_baseline "
                    "apply, and the evaluation gates judge the predictions)"
                )
    return problems


def _canary_problems(canary: Any, task: str) -> list[str]:
    """The canary's score margin is a probability, except a regression's (the target's units)."""
    if not canary.enabled:
        return []
    if task == "regression" and "score_shift_margin" not in canary.model_fields_set:
        return [
            "canary.score_shift_margin: a regression's canary compares the mean prediction, in "
            "the target's units; set the shift you tolerate (e.g. a tenth of the target's "
            "standard deviation)"
        ]
    if task != "regression" and canary.score_shift_margin > 1:
        return [
            f"canary.score_shift_margin: {canary.score_shift_margin:g} is a shift of a "
            "probability, at most 1"
        ]
    return []


# Gate families each task may use; `valid_predictions` (model_quality) serves every model task.
TASK_FAMILIES = {
    "binary_classification": ("data_contract", "parity", "model_quality", "serving", "shadow"),
    "multiclass_classification": ("data_contract", "parity", "multiclass", "serving", "shadow"),
    "regression": ("data_contract", "parity", "regression", "serving", "shadow"),
    "ranking": ("data_contract", "parity", "ranking"),
    "llm": ("llm",),
}
SHARED_GATES = {"valid_predictions": TABULAR_TASKS} | MULTICLASS_LOG_LOSS_GATES


def task_gate_problem(task: str, gate: str) -> str | None:
    """Why `gate` cannot be used by `task`, with the fix; None when it can."""
    family = CATALOG[gate].family
    if task in SHARED_GATES.get(gate, ()) or family in TASK_FAMILIES[task]:
        return None
    if task == "ranking" and family == "model_quality":
        metric = gate.removeprefix("segment_").removesuffix("_vs_baseline")
        return (
            f"{gate!r} is a classification gate and does not apply to model.task ranking "
            f"({metric} needs labels 0/1 and probabilities). Use the ranking gates instead: "
            "ndcg_at_k_vs_baseline, segment_ndcg_at_k_vs_baseline, min_ndcg_at_k and their "
            "recall_at_k variants (docs/gates.md#ranking-quality-against-production)"
        )
    if task == "ranking":
        return (
            f"{gate!r} ({family} gate) is not available for model.task ranking yet: remove it "
            "(ranking releases are gated offline: data contract, parity and ranking quality)"
        )
    if family == "ranking":
        return f"{gate!r} needs model.task ranking (and data.query_column); remove it"
    return other_task_problem(task, gate, family)


def ranking_problems(spec: Any) -> list[str]:
    """What a ranking spec lacks, or a query column elsewhere."""
    ranking = spec.model.task == "ranking"
    query = spec.data.query_column if spec.data is not None else None
    if ranking and spec.data is not None and query is None:
        return ["data.query_column: model.task ranking needs the column naming each row's query"]
    if ranking and spec.canary.enabled:
        return ["canary.enabled: canaries are not available for model.task ranking; remove it"]
    if not ranking and query is not None:
        return [f"data.query_column is only used by model.task ranking: remove it ({query!r})"]
    return []
