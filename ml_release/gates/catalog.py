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
from ml_release.gates.llm import llm_gates
from ml_release.gates.model_quality import model_quality_gates
from ml_release.gates.ranking import ranking_gates
from ml_release.gates.serving import serving_gates
from ml_release.gates.shadow import shadow_gates
from ml_release.gates.task_catalog import multiclass_gates, regression_gates


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
            verdict_rule="`fail` when a contract column is missing or has another dtype, or (with "
            "`strict`) an unexpected column exists; a missing column next to a similar new one "
            "is reported as a possible rename. Otherwise `pass`.",
            example={"dataset": "evaluation_features", "strict": True},
        ),
        GateDefinition(
            "null_rate_threshold",
            "data_contract",
            NullRateParams,
            "Per-column null (or NaN/inf) rate within the spec's limits.",
            verdict_rule="`fail` when any column's share of null, NaN or ±inf values is above "
            "its `contract.null_rate` entry (else `max_null_rate`); `inconclusive` for a column "
            "the table lacks; otherwise `pass`.",
            example={"max_null_rate": 0.0},
        ),
        GateDefinition(
            "feature_range",
            "data_contract",
            FeatureRangeParams,
            "Share of numeric values outside the explicit or inferred range.",
            verdict_rule="`fail` when any numeric feature has more than `max_out_of_range_rate` "
            "of its finite values outside `contract.ranges` (or the reference's range widened "
            "by `tolerance`); `inconclusive` for a column the table lacks; otherwise `pass`.",
            example={"max_out_of_range_rate": 0.001, "tolerance": 0.05},
        ),
        GateDefinition(
            "numeric_drift",
            "data_contract",
            NumericDriftParams,
            "PSI or Jensen-Shannon distance per numeric feature against the reference.",
            verdict_rule="`fail` when any numeric feature's PSI (or Jensen-Shannon distance) over "
            "the reference's quantile bins is above `threshold`; `inconclusive` for a column the "
            "table lacks; otherwise `pass`. Effect sizes, not p-values: the same at any size.",
            example={"method": "psi", "threshold": 0.2},
        ),
        GateDefinition(
            "categorical_drift",
            "data_contract",
            CategoricalDriftParams,
            "Unseen-category rate and distribution distance per categorical feature.",
            verdict_rule="`fail` when any categorical feature has a share of unseen categories "
            "above `max_unseen_rate` or a distance above `max_distance` (rare reference "
            "categories pooled); `inconclusive` for a column the table lacks; otherwise `pass`.",
            example={"max_unseen_rate": 0.01, "max_distance": 0.1},
        ),
        GateDefinition(
            "training_serving_parity",
            "parity",
            ParityParams,
            "Logged serving features equal the shared feature code's output, row by row.",
            verdict_rule="`fail` when, for any feature, the share of requests whose logged value "
            "differs from the recomputed one (numbers: beyond `atol + rtol * |x|`; categories: "
            "exactly) is above `max_mismatch_rate`; duplicate request ids make it "
            "`inconclusive`; otherwise `pass`.",
            example={"max_mismatch_rate": 0.0, "atol": 1e-6, "rtol": 1e-6},
        ),
        *model_quality_gates(),
        *ranking_gates(),
        *regression_gates(),
        *multiclass_gates(),
        *serving_gates(),
        *shadow_gates(),
        *llm_gates(),
    )
}


# Families judged on evaluation_report from the paired predictions.
EVALUATION_FAMILIES = ("model_quality", "ranking", "regression", "multiclass")


def gate_target(name: str, params: GateParams) -> str:
    """The asset a gate's check is attached to."""
    if CATALOG[name].family == "parity":
        return keys.SERVING_FEATURES_RECOMPUTED
    if CATALOG[name].family in EVALUATION_FAMILIES:
        return keys.EVALUATION_REPORT
    if CATALOG[name].family == "serving":
        return keys.SERVING_REPORT
    if CATALOG[name].family == "shadow":
        return keys.SHADOW_REPORT
    if CATALOG[name].family == "llm":
        return keys.LLM_EVALUATION_REPORT
    return params.dataset  # type: ignore[attr-defined]


FAMILY_TITLES = {
    "data_contract": "Data contract",
    "parity": "Training-serving parity",
    "model_quality": "Model quality against production",
    "ranking": "Ranking quality against production",
    "regression": "Regression quality against production",
    "multiclass": "Multi-class quality against production",
    "serving": "Serving path",
    "shadow": "Shadow replay",
    "llm": "LLM and RAG",
}
MISSING_RULE = "_No verdict rule documented yet: see the summary above._"


def _default(field) -> str:
    if field.is_required():
        return "required"
    return f"`{field.default!r}`"


def example_yaml(gate: GateDefinition) -> str:
    """A `gates:` entry for `gate`: its example parameters, or its required ones as placeholders."""
    import yaml

    params = gate.example
    if params is None:
        params = {
            name: f"<{name}>"
            for name, field in gate.params.model_fields.items()
            if field.is_required()
        }
    entry = {"name": gate.name, "must_pass": True, **params}
    return yaml.safe_dump([entry], sort_keys=False).rstrip()


def catalog_markdown() -> str:
    """The catalog as Markdown: per gate its summary, parameters, verdict rule and an example."""
    lines = [
        "# Gate reference",
        "",
        "<!-- Generated from the gate catalog (ml_release/gates/): `ml-release gates > "
        "docs/gates.md`. Do not edit by hand; tests/test_docs.py checks it is up to date. -->",
        "",
        "Every gate a `release.yaml` may name, grouped by family. Each gate becomes a Dagster "
        "asset check; `must_pass: true` makes it blocking (ERROR), `false` a warning (WARN). "
        "Verdicts are `pass`, `fail` or `inconclusive`; what an inconclusive `must_pass` gate "
        "does is the spec's `inconclusive` setting (`block` by default). See "
        "[concepts.md](concepts.md) for the vocabulary.",
        "",
        "Besides `name` and `must_pass`, every entry may have an `id`: its check's name. It "
        "defaults to the gate name, so one gate may be listed several times when the entries "
        "judge different sets: `roc_auc_vs_baseline` on the holdout and again with `eval_set: "
        "serving` (the check `roc_auc_vs_baseline_serving`). Two entries on the same set need "
        "an `id` each. A spec needs at least one `must_pass` model-quality gate (else "
        "`allow_ungated: true`, which every verdict table shows), and a `threshold` or "
        "`max_drop` outside its metric's range is refused with the range.",
        "",
    ]
    families = list(dict.fromkeys(g.family for g in CATALOG.values()))
    for family in families:
        names = [g.name for g in CATALOG.values() if g.family == family]
        title = FAMILY_TITLES.get(family, family)
        lines.append(f"- **{title}**: " + ", ".join(f"[`{n}`](#{n})" for n in names))
    lines.append("")
    for family in families:
        lines += [f"## {FAMILY_TITLES.get(family, family)}", ""]
        for gate in (g for g in CATALOG.values() if g.family == family):
            lines += [f"### `{gate.name}`", "", gate.summary, ""]
            fields = gate.params.model_fields
            if fields:
                lines += ["| parameter | default | description |", "|---|---|---|"]
                for field_name, field in fields.items():
                    text = (field.description or "").replace("|", "\\|")
                    lines.append(f"| `{field_name}` | {_default(field)} | {text} |")
            else:
                lines.append("No parameters besides `name` and `must_pass`.")
            lines += ["", "**Verdict.** " + (gate.verdict_rule or MISSING_RULE), ""]
            lines += ["```yaml", example_yaml(gate), "```", ""]
    return "\n".join(lines)
