"""The catalog of gates a release spec may name, with their documented parameters.

Each entry pairs a gate name with a pydantic model of its parameters; the model's field
descriptions are the parameter documentation (rendered into docs/gates.md by
`ml-release gates --markdown`). Unknown parameters are rejected, numbers must be finite, and
every threshold says which direction is worse.
"""

from typing import Literal

from pydantic import Field

from ml_release import keys
from ml_release.gates.catalog_base import GateDefinition, GateParams, Rate
from ml_release.gates.model_quality import model_quality_gates
from ml_release.gates.serving import serving_gates
from ml_release.gates.shadow import shadow_gates


class ContractParams(GateParams):
    """Parameters shared by the data-contract gates."""

    dataset: Literal["evaluation_features", "serving_features_recomputed"] = Field(
        default=keys.EVALUATION_FEATURES,
        description="Feature table to check; the reference is always `training_features`.",
    )


class FeatureSchemaParams(ContractParams):
    """Columns present with the reference dtypes; no unexpected columns when strict."""

    strict: bool = Field(True, description="Fail on columns the contract does not name.")
    sample_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Rows pandera validates; names and dtypes are the same for every row.",
    )


class NullRateParams(ContractParams):
    """Per-column share of null or non-finite values."""

    max_null_rate: Rate = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Limit for columns without their own `contract.null_rate` entry.",
    )


class FeatureRangeParams(ContractParams):
    """Share of numeric values outside the allowed range."""

    max_out_of_range_rate: Rate = Field(
        0.001, ge=0.0, le=1.0, description="Highest tolerated share of out-of-range values."
    )
    tolerance: float = Field(
        0.05,
        ge=0.0,
        le=10.0,
        description="Inferred ranges are the reference [min, max] widened by this share of "
        "the span on each side; explicit `contract.ranges` are used as written.",
    )
    columns: list[str] | None = Field(None, description="Numeric features to check (all).")


class NumericDriftParams(ContractParams):
    """Distribution shift of numeric features against the reference."""

    method: Literal["psi", "jensen_shannon"] = Field(
        "psi", description="Population stability index or Jensen-Shannon distance (base 2)."
    )
    threshold: float = Field(
        0.2,
        gt=0.0,
        description="Largest tolerated effect size per feature (PSI: 0.1 small, 0.25 large; "
        "JS distance lies in [0, 1]).",
    )
    bins: int = Field(10, ge=2, le=100, description="Reference quantile bins.")
    columns: list[str] | None = Field(None, description="Numeric features to check (all).")


class CategoricalDriftParams(ContractParams):
    """Unseen categories and distribution distance against the reference."""

    method: Literal["jensen_shannon", "linf"] = Field(
        "jensen_shannon",
        description="Jensen-Shannon distance (base 2) or L-infinity (largest share change).",
    )
    max_distance: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest tolerated distance per feature."
    )
    max_unseen_rate: Rate = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Highest tolerated share of values outside the allowed categories "
        "(`contract.categories`, else those seen in the reference).",
    )
    min_category_share: Rate = Field(
        0.005,
        ge=0.0,
        lt=1.0,
        description="Reference categories rarer than this are pooled into '(other)' for the "
        "distance, so sampling noise over hundreds of rare values is not read as drift.",
    )
    columns: list[str] | None = Field(None, description="Categorical features to check (all).")


class ParityParams(GateParams):
    """Row-level agreement of logged serving features with recomputed ones."""

    max_mismatch_rate: Rate = Field(
        0.0, ge=0.0, le=1.0, description="Highest tolerated share of mismatching rows per feature."
    )
    atol: float = Field(1e-6, ge=0.0, description="Absolute tolerance for numeric features.")
    rtol: float = Field(1e-6, ge=0.0, description="Relative tolerance for numeric features.")
    examples: int = Field(10, ge=0, le=1000, description="Mismatching rows shown as evidence.")


CATALOG: dict[str, GateDefinition] = {
    gate.name: gate
    for gate in (
        GateDefinition(
            "feature_schema",
            "data_contract",
            FeatureSchemaParams,
            "Columns present with the reference dtypes, no unexpected columns, rename hints.",
        ),
        GateDefinition(
            "null_rate_threshold",
            "data_contract",
            NullRateParams,
            "Per-column null (or NaN/inf) rate within the spec's limits.",
        ),
        GateDefinition(
            "feature_range",
            "data_contract",
            FeatureRangeParams,
            "Share of numeric values outside the explicit or inferred range.",
        ),
        GateDefinition(
            "numeric_drift",
            "data_contract",
            NumericDriftParams,
            "PSI or Jensen-Shannon distance per numeric feature against the reference.",
        ),
        GateDefinition(
            "categorical_drift",
            "data_contract",
            CategoricalDriftParams,
            "Unseen-category rate and distribution distance per categorical feature.",
        ),
        GateDefinition(
            "training_serving_parity",
            "parity",
            ParityParams,
            "Logged serving features equal the shared feature code's output, row by row.",
        ),
        *model_quality_gates(),
        *serving_gates(),
        *shadow_gates(),
    )
}


def gate_target(name: str, params: GateParams) -> str:
    """The asset a gate's check is attached to."""
    if CATALOG[name].family == "parity":
        return keys.SERVING_FEATURES_RECOMPUTED
    if CATALOG[name].family == "model_quality":
        return keys.EVALUATION_REPORT
    if CATALOG[name].family == "serving":
        return keys.SERVING_REPORT
    if CATALOG[name].family == "shadow":
        return keys.SHADOW_REPORT
    return params.dataset  # type: ignore[attr-defined]


def catalog_markdown() -> str:
    """The catalog as Markdown: one section per gate with a table of its parameters."""
    lines = ["# Gate catalog", ""]
    for gate in CATALOG.values():
        lines += [f"## `{gate.name}`", "", gate.summary, ""]
        lines += ["| parameter | default | description |", "|---|---|---|"]
        for field_name, field in gate.params.model_fields.items():
            lines.append(f"| `{field_name}` | `{field.default!r}` | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)
