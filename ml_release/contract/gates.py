"""The data-contract gates, judged from a reference profile and one scan of the target.

`evaluate_contract` profiles the target once and returns one `GateResult` per requested gate.
A column the target lacks (or holds with the wrong type) is "not evaluated" by the value gates:
their verdict is then at best inconclusive, never a pass, and `feature_schema` names the cause.
"""

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np

from ml_release.contract import stats
from ml_release.contract.profile import Profile, profile_target
from ml_release.contract.schema import check_feature_schema
from ml_release.gates.catalog import (
    CategoricalDriftParams,
    FeatureRangeParams,
    FeatureSchemaParams,
    GateParams,
    NullRateParams,
    NumericDriftParams,
)
from ml_release.gates.result import GateResult, Verdict
from ml_release.identifiers import quote
from ml_release.plots import distribution_plot
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


def _verdict(rows: list[dict]) -> Verdict:
    statuses = {r["status"] for r in rows}
    if "fail" in statuses:
        return Verdict.FAIL
    if "not evaluated" in statuses or not rows:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _not_evaluated(column: str, reason: str) -> dict:
    return {"column": column, "status": "not evaluated", "reason": reason}


def _worst(rows: list[dict], key: str) -> dict | None:
    scored = [r for r in rows if r.get(key) is not None]
    return max(scored, key=lambda r: r[key]) if scored else None


def _examples(inputs: ContractInputs, condition: str, columns: list[str]) -> list[dict]:
    shown = [c for c in inputs.id_columns if c not in columns] + columns
    select = ", ".join(quote(c) for c in shown)
    rows = inputs.connection.execute(
        f"SELECT {select} FROM {inputs.relation[0]} WHERE {condition} LIMIT {MAX_EXAMPLES}",
        inputs.relation[1],
    ).fetchall()
    return [dict(zip(shown, row, strict=True)) for row in rows]


def _result(inputs, gate, rows, method, key, limit_key, summary_ok, summary_fail) -> GateResult:
    verdict = _verdict(rows)
    worst = _worst(rows, key) or {}
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


def null_rate_threshold(inputs: ContractInputs, gate: GateSpec) -> GateResult:
    """Share of null or non-finite values per feature against its limit."""
    params: NullRateParams = gate.params  # type: ignore[assignment]
    rows = []
    for column in inputs.spec.features.all:
        limit = inputs.spec.contract.null_rate.get(column, params.max_null_rate)
        profile, ref = inputs.target.columns.get(column), inputs.reference.columns.get(column)
        if profile is None or ref is None or not inputs.target.rows or not inputs.reference.rows:
            reason = inputs.target.unavailable.get(column, "missing or no rows")
            rows.append(_not_evaluated(column, reason))
            continue
        rate = (inputs.target.rows - profile.nonnull + profile.nonfinite) / inputs.target.rows
        ref_rate = (inputs.reference.rows - ref.nonnull + ref.nonfinite) / inputs.reference.rows
        rows.append(
            {
                "column": column,
                "null_rate": rate,
                "reference_null_rate": ref_rate,
                "limit": limit,
                "status": "fail" if rate > limit else "ok",
            }
        )
    result = _result(
        inputs,
        gate,
        rows,
        "null or non-finite share per column",
        "null_rate",
        "limit",
        "every feature within its null-rate limit",
        "null rate above the limit in {columns}",
    )
    failing = [r["column"] for r in rows if r["status"] == "fail"]
    if failing:
        condition = " OR ".join(
            f"{quote(c)} IS NULL"
            + (
                f" OR NOT isfinite(CAST({quote(c)} AS DOUBLE))"
                if inputs.target.columns[c].kind == "numeric"
                else ""
            )
            for c in failing
        )
        result.examples = _examples(inputs, condition, failing)
    return result


def allowed_ranges(
    spec: ReleaseSpec, reference: Profile, params: FeatureRangeParams | None
) -> dict[str, tuple[float | None, float | None]]:
    """The range each numeric feature must stay in: explicit from the spec, else inferred."""
    if params is None:
        return {}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for column in params.columns or spec.features.numeric:
        explicit = spec.contract.ranges.get(column)
        ref = reference.columns.get(column)
        if explicit is not None:
            ranges[column] = (explicit.min, explicit.max)
        elif ref is not None and ref.min is not None and ref.max is not None:
            pad = params.tolerance * (ref.max - ref.min)
            ranges[column] = (ref.min - pad, ref.max + pad)
    return ranges


def feature_range(inputs: ContractInputs, gate: GateSpec) -> GateResult:
    """Share of finite numeric values outside the allowed range."""
    params: FeatureRangeParams = gate.params  # type: ignore[assignment]
    rows = []
    for column in params.columns or inputs.spec.features.numeric:
        profile = inputs.target.columns.get(column)
        if profile is None or profile.allowed_range is None:
            rows.append(_not_evaluated(column, inputs.target.unavailable.get(column, "no range")))
            continue
        finite = profile.nonnull - profile.nonfinite
        rate = profile.out_of_range / finite if finite else 0.0
        low, high = profile.allowed_range
        rows.append(
            {
                "column": column,
                "out_of_range_rate": rate,
                "allowed_min": low,
                "allowed_max": high,
                "observed_min": profile.min,
                "observed_max": profile.max,
                "limit": params.max_out_of_range_rate,
                "status": "fail" if rate > params.max_out_of_range_rate else "ok",
            }
        )
    result = _result(
        inputs,
        gate,
        rows,
        f"share outside [min, max] (inferred ranges widened by {params.tolerance:.0%} of the span)",
        "out_of_range_rate",
        "limit",
        "numeric features within their ranges",
        "values out of range in {columns}",
    )
    failing = [r for r in rows if r["status"] == "fail"]
    if failing:
        parts = []
        for r in failing:
            value = f"CAST({quote(r['column'])} AS DOUBLE)"
            if r["allowed_min"] is not None:
                parts.append(f"{value} < {float(r['allowed_min'])!r}")
            if r["allowed_max"] is not None:
                parts.append(f"{value} > {float(r['allowed_max'])!r}")
        result.examples = _examples(inputs, " OR ".join(parts), [r["column"] for r in failing])
    return result


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
            rows.append(_not_evaluated(column, inputs.target.unavailable.get(column, "missing")))
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
    result = _result(
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
    if panels:
        top = sorted(panels, key=lambda p: -p["value"])[:4]
        result.plot_png = distribution_plot(top, f"numeric_drift on {inputs.target_name}")
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
            rows.append(_not_evaluated(column, inputs.target.unavailable.get(column, "missing")))
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
    result = _result(
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
    if panels:
        top = sorted(panels, key=lambda p: -p["value"])[:4]
        result.plot_png = distribution_plot(top, f"categorical_drift on {inputs.target_name}")
    return result


VALUE_GATES: dict[str, Callable[[ContractInputs, GateSpec], GateResult]] = {
    "null_rate_threshold": null_rate_threshold,
    "feature_range": feature_range,
    "numeric_drift": numeric_drift,
    "categorical_drift": categorical_drift,
}


def _first(gates: list[GateSpec], name: str) -> GateParams | None:
    return next((g.params for g in gates if g.name == name), None)


def evaluate_contract(
    connection: duckdb.DuckDBPyConnection,
    spec: ReleaseSpec,
    target_name: str,
    target: tuple[str, list],
    reference_relation: tuple[str, list],
    reference: Profile,
    gates: list[GateSpec],
    id_columns: list[str],
) -> list[GateResult]:
    """Judge every contract gate of one dataset from one scan of it."""
    ranges = allowed_ranges(spec, reference, _first(gates, "feature_range"))  # type: ignore[arg-type]
    profile = profile_target(connection, target[0], target[1], reference, ranges)
    inputs = ContractInputs(spec, target_name, reference, profile, connection, target, id_columns)
    results = []
    for gate in gates:
        if gate.name == "feature_schema":
            contract_columns = list(dict.fromkeys([*spec.features.all, *spec.data.segments]))
            result = check_feature_schema(
                connection,
                target,
                reference_relation,
                contract_columns,
                [*id_columns, spec.data.timestamp_column, spec.data.label],
                gate.params,  # type: ignore[arg-type]
            )
            result.target = target_name
        elif profile.rows == 0:
            result = GateResult(
                gate.name,
                target_name,
                Verdict.INCONCLUSIVE,
                "the dataset has no rows: nothing to judge",
                "n/a",
                support={"rows": 0, "reference_rows": reference.rows},
            )
        else:
            result = VALUE_GATES[gate.name](inputs, gate)
        result.spec_hash = spec.spec_hash
        results.append(result)
    return results


__all__ = ["FeatureSchemaParams", "allowed_ranges", "evaluate_contract"]
