"""Drift gates of the data contract: numeric and categorical distributions vs the reference."""

from collections.abc import Callable

import numpy as np

from ml_release.contract import stats
from ml_release.contract.evidence import ContractInputs, attach_plot, column_result, not_evaluated
from ml_release.gates.catalog import CategoricalDriftParams, NumericDriftParams
from ml_release.gates.result import GateResult
from ml_release.spec import GateSpec


def _bin_labels(edges: list[float]) -> list[str]:
    bounds = [f"≤{e:.3g}" for e in edges]
    return [*bounds, f">{edges[-1]:.3g}" if edges else "all"]


def numeric_drift(inputs: ContractInputs, gate: GateSpec) -> GateResult:
    """PSI or Jensen-Shannon distance per numeric feature over the reference's quantile bins."""
    params: NumericDriftParams = gate.params  # type: ignore[assignment]
    measure: Callable = stats.psi if params.method == "psi" else stats.js_distance
    rows, panels = [], []
    for column in params.columns or inputs.spec.features.numeric:
        profile, ref = inputs.target.columns.get(column), inputs.reference.columns.get(column)
        if profile is None or ref is None:
            rows.append(not_evaluated(column, inputs.target.unavailable.get(column, "missing")))
            continue
        value = measure(np.array(ref.counts), np.array(profile.counts))
        status = "fail" if value > params.threshold else "ok"
        rows.append(
            {
                "column": column,
                params.method: value,
                "threshold": params.threshold,
                "bins": len(ref.counts),
                "status": status,
            }
        )
        panels.append(
            {
                "column": column,
                "labels": _bin_labels(ref.edges),
                "reference": ref.counts,
                "target": profile.counts,
                "stat": f"{params.method}={value:.3f}",
                "value": value,
            }
        )
    result = column_result(
        inputs,
        gate,
        rows,
        f"{params.method} over {params.bins} reference quantile bins",
        params.method,
        "threshold",
        "no numeric feature drifted beyond the threshold",
        "drift above the threshold in {columns}",
    )
    result.baseline = 0.0
    attach_plot(result, panels, f"numeric_drift on {inputs.target_name}")
    return result


OTHER = "(other)"


def _pool_rare(
    reference: dict[str, int], target: dict[str, int], min_share: float
) -> tuple[dict[str, int], dict[str, int]]:
    """Pool categories rarer than `min_share` of the reference (and unseen ones) into OTHER."""
    total = sum(reference.values()) or 1
    kept = {k for k, v in reference.items() if v / total >= min_share}

    def pool(counts: dict[str, int]) -> dict[str, int]:
        out = {k: v for k, v in counts.items() if k in kept}
        rest = sum(v for k, v in counts.items() if k not in kept)
        return out | ({OTHER: rest} if rest else {})

    return pool(reference), pool(target)


def categorical_drift(inputs: ContractInputs, gate: GateSpec) -> GateResult:
    """Unseen-category share and distribution distance per categorical feature."""
    params: CategoricalDriftParams = gate.params  # type: ignore[assignment]
    measure = stats.js_distance if params.method == "jensen_shannon" else stats.linf_distance
    rows, panels = [], []
    for column in params.columns or inputs.spec.features.categorical:
        profile, ref = inputs.target.columns.get(column), inputs.reference.columns.get(column)
        if profile is None or ref is None:
            rows.append(not_evaluated(column, inputs.target.unavailable.get(column, "missing")))
            continue
        allowed = set(inputs.spec.contract.categories.get(column) or ref.categories)
        unseen = {k: v for k, v in profile.categories.items() if k not in allowed}
        unseen_rate = sum(unseen.values()) / profile.nonnull if profile.nonnull else 0.0
        ref_pooled, tgt_pooled = _pool_rare(
            ref.categories, profile.categories, params.min_category_share
        )
        labels = sorted(set(ref_pooled) | set(tgt_pooled))
        ref_counts = np.array([ref_pooled.get(k, 0) for k in labels])
        tgt_counts = np.array([tgt_pooled.get(k, 0) for k in labels])
        distance = measure(ref_counts, tgt_counts)
        empty = sorted(k for k in ref.categories if k not in profile.categories)
        bad = unseen_rate > params.max_unseen_rate or distance > params.max_distance
        rows.append(
            {
                "column": column,
                "unseen_rate": unseen_rate,
                "max_unseen_rate": params.max_unseen_rate,
                "distance": distance,
                "max_distance": params.max_distance,
                "unseen_values": ", ".join(sorted(unseen, key=lambda k: -unseen[k])[:5]),
                "empty_categories": ", ".join(empty[:10]),
                "status": "fail" if bad else "ok",
            }
        )
        top = np.argsort(-(ref_counts + tgt_counts))[:12]
        panels.append(
            {
                "column": column,
                "labels": [labels[i] for i in top],
                "reference": ref_counts[top],
                "target": tgt_counts[top],
                "stat": f"{params.method}={distance:.3f}",
                "value": distance,
            }
        )
    result = column_result(
        inputs,
        gate,
        rows,
        f"unseen-category share and {params.method} distance "
        f"(categories under {params.min_category_share:.1%} pooled)",
        "distance",
        "max_distance",
        "categories stable and known",
        "unseen categories or distribution change in {columns}",
    )
    result.baseline = 0.0
    attach_plot(result, panels, f"categorical_drift on {inputs.target_name}")
    return result
