"""Value gates of the data contract: null rates and ranges, judged from the profiles."""

from ml_release.contract.evidence import (
    ContractInputs,
    column_result,
    failing_examples,
    not_evaluated,
)
from ml_release.contract.profile import Profile
from ml_release.gates.catalog import FeatureRangeParams, NullRateParams
from ml_release.gates.result import GateResult
from ml_release.identifiers import quote
from ml_release.spec import GateSpec, ReleaseSpec


def null_rate_threshold(inputs: ContractInputs, gate: GateSpec) -> GateResult:
    """Share of null or non-finite values per feature against its limit."""
    params: NullRateParams = gate.params  # type: ignore[assignment]
    rows = []
    for column in inputs.spec.features.all:
        limit = inputs.spec.contract.null_rate.get(column, params.max_null_rate)
        profile, ref = inputs.target.columns.get(column), inputs.reference.columns.get(column)
        if profile is None or ref is None:
            rows.append(not_evaluated(column, inputs.target.unavailable.get(column, "missing")))
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
    result = column_result(
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
        result.examples = failing_examples(inputs, condition, failing)
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
            rows.append(not_evaluated(column, inputs.target.unavailable.get(column, "no range")))
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
    result = column_result(
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
        result.examples = failing_examples(
            inputs, " OR ".join(parts), [r["column"] for r in failing]
        )
    return result
