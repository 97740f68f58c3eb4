"""Spec rules about the `gates:` list as a whole: gate ids, whether the spec can block, bounds.

- **Ids.** One gate name may be listed several times, e.g. `roc_auc_vs_baseline` on the holdout
  and again on the labelled serving traffic (`eval_set: serving`). Each entry's check is named
  by its `id`: given explicitly, else the gate name, unless another entry without an id has the
  same name and target, in which case every such entry judged on a set other than the holdout
  is `<name>_<eval_set>`. A gate listed once keeps its name, so ledgers keep meaning the same.
- **Blocking.** A spec with no `must_pass` model-quality gate cannot stop a model trained on
  shuffled labels; it is refused unless it says `allow_ungated: true` (which every verdict
  table then shows).
- **Bounds.** A threshold outside its metric's range (an AUC floor of -1), or a tolerated drop
  wider than the whole range, can never fail; both are refused with the range.
"""

import math
from typing import Any

from ml_release import keys
from ml_release.gates.catalog import CATALOG, EVALUATION_FAMILIES, GateParams
from ml_release.gates.llm import QUALITY_METRICS as LLM_QUALITY_METRICS
from ml_release.identifiers import is_identifier

DEFAULT_EVAL_SET = "holdout"
FAMILY_TARGETS = {
    "parity": keys.SERVING_FEATURES_RECOMPUTED,
    "serving": keys.SERVING_REPORT,
    "shadow": keys.SHADOW_REPORT,
    "llm": keys.LLM_EVALUATION_REPORT,
    **{family: keys.EVALUATION_REPORT for family in EVALUATION_FAMILIES},
}
# Gates that judge the model against labels: at least one must block. `valid_predictions`
# only checks that scores are numbers; a model trained on shuffled labels passes it.
NOT_QUALITY = ("valid_predictions",)
LLM_QUALITY = (*LLM_QUALITY_METRICS, "llm_judge_faithfulness")
INF = math.inf
# The values each metric can take, by the metric part of a gate name.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "ece"), (0.0, 1.0)),
    **dict.fromkeys(("macro_f1", "top_k_accuracy", "class_recall"), (0.0, 1.0)),
    **dict.fromkeys(("ndcg_at_k", "recall_at_k"), (0.0, 1.0)),
    **dict.fromkeys(
        ("log_loss", "mae", "rmse", "pinball_loss", "calibration_in_the_large"), (0.0, INF)
    ),
}


def gate_metric(name: str) -> str:
    """The metric a quality gate judges: `segment_roc_auc_vs_baseline` -> `roc_auc`."""
    metric = name.removeprefix("segment_").removesuffix("_vs_baseline")
    for bound in ("min_", "max_"):
        if metric.startswith(bound) and metric.removeprefix(bound) in METRIC_RANGES:
            return metric.removeprefix(bound)
    return metric


def _raw_target(name: str, raw: dict) -> str:
    family = CATALOG[name].family
    return FAMILY_TARGETS.get(family) or str(raw.get("dataset", keys.EVALUATION_FEATURES))


def _raw_eval_set(name: str, raw: dict) -> str | None:
    if "eval_set" not in CATALOG[name].params.model_fields:
        return None
    return str(raw.get("eval_set", DEFAULT_EVAL_SET))


def fill_gate_ids(gates: Any) -> Any:
    """The raw `gates:` list with a default `id` on every entry that has none.

    Entries that are not mappings or name no known gate are left as they are: the gate's own
    validation reports them.
    """
    if not isinstance(gates, list):
        return gates
    known = [g if isinstance(g, dict) and g.get("name") in CATALOG else None for g in gates]
    groups: dict[tuple[str, str], int] = {}
    for raw in known:
        if raw is not None and "id" not in raw:
            key = (raw["name"], _raw_target(raw["name"], raw))
            groups[key] = groups.get(key, 0) + 1
    out = []
    for raw, original in zip(known, gates, strict=True):
        if raw is None or "id" in raw:
            out.append(original)
            continue
        name = raw["name"]
        eval_set = _raw_eval_set(name, raw)
        shared = groups[(name, _raw_target(name, raw))] > 1
        gate_id = (
            name if not shared or eval_set in (None, DEFAULT_EVAL_SET) else (f"{name}_{eval_set}")
        )
        out.append({**raw, "id": gate_id})
    return out


def check_gate_id(gate_id: Any, name: str) -> str:
    """An explicit `id`: an identifier that is not another gate's name."""
    if not is_identifier(gate_id):
        raise ValueError(
            f"id {gate_id!r} is not a valid check name: use letters, digits and underscores, "
            f"e.g. {name}_recent"
        )
    if gate_id != name and gate_id in CATALOG:
        raise ValueError(
            f"id {gate_id!r} is the name of another gate; choose an id that says what this "
            f"{name} entry judges, e.g. {name}_recent"
        )
    return str(gate_id)


def duplicate_id_problems(gates: list) -> list[str]:
    """Entries whose id is already used on the same target, with the fix."""
    problems, seen = [], {}
    for i, gate in enumerate(gates):
        key = (gate.id, gate.target)
        if key in seen:
            first = seen[key]
            problems.append(
                f"gates[{i}]: {gate.name!r} is listed twice for {gate.target!r} with id "
                f"{gate.id!r} (also gates[{first}]); merge the entries, or judge them on "
                "different sets (`eval_set`, `dataset`), or give each its own `id`"
            )
        else:
            seen[key] = i
    return problems


def is_quality_gate(name: str) -> bool:
    """True for a gate that judges the model against labels (or an LLM's answers' quality)."""
    family = CATALOG[name].family
    if family == "llm":
        return name in LLM_QUALITY
    return family in EVALUATION_FAMILIES and name not in NOT_QUALITY


def blocking_problems(gates: list, allow_ungated: bool) -> list[str]:
    """Why a spec cannot block a bad model, with the fix; [] when it can."""
    if allow_ungated or any(g.must_pass and is_quality_gate(g.name) for g in gates):
        return []
    listed = [g.id for g in gates if is_quality_gate(g.name)]
    now = (
        f" ({', '.join(listed)} {'is' if len(listed) == 1 else 'are'} must_pass: false)"
        if listed
        else ""
    )
    return [
        "gates: no must_pass model-quality gate" + now + ", so nothing stops a model that "
        "predicts badly (one trained on shuffled labels passes every data gate). Fix: add one, "
        "e.g. `- {name: roc_auc_vs_baseline, must_pass: true, max_drop: 0.01}` (see "
        "docs/gates.md), or set `allow_ungated: true` to release without one (every verdict "
        "table then says so)"
    ]


def range_problem(name: str, params: GateParams) -> str | None:
    """Why a bound of a quality gate lies outside its metric's range, or None."""
    metric = gate_metric(name)
    if metric not in METRIC_RANGES or CATALOG[name].family == "llm":
        return None
    low, high = METRIC_RANGES[metric]
    shown = f"[{low:g}, {'inf' if high == INF else f'{high:g}'}]"
    threshold = getattr(params, "threshold", None)
    if threshold is not None and not low <= threshold <= high:
        return (
            f"threshold {threshold:g} is outside the range of {metric}, {shown}: the gate could "
            f"never {'pass' if _unreachable(name, threshold, low, high) else 'fail'}. Use a "
            "value within the range"
        )
    max_drop = getattr(params, "max_drop", None)
    if max_drop is not None and high != INF and max_drop >= high - low:
        return (
            f"max_drop {max_drop:g} is not less than the whole range of {metric}, {shown}: the "
            "gate could never fail. Use a drop smaller than the range (e.g. 0.01)"
        )
    return None


def _unreachable(name: str, threshold: float, low: float, high: float) -> bool:
    # A floor above the range (or a ceiling below it) can never be met.
    floor = name.startswith("min_")
    return threshold > high if floor else threshold < low
