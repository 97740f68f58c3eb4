"""The release spec (`release.yaml`): typed models, loading, and errors that say how to fix it.

`load_spec(path)` reads the YAML, validates it against the models below and the gate catalog,
and raises one `SpecError` listing every problem with its key path (`gates[2].max_drop`) and a
fix, before anything runs. Paths may use `${ML_RELEASE_HOME}`; relative paths are resolved
against the folder of the spec file.
"""

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from ml_release import keys
from ml_release.errors import SpecError
from ml_release.gates.catalog import CATALOG, GateParams, gate_target
from ml_release.home import release_home
from ml_release.identifiers import check_identifier
from ml_release.llm.spec import LLMSpec
from ml_release.spec_data import (
    DataSpec,
    SourceSpec,
    SpecModel,
    close_matches,
    identifier_field,
)
from ml_release.spec_errors import format_validation_error
from ml_release.spec_gates import (
    blocking_problems,
    check_gate_id,
    duplicate_id_problems,
    fill_gate_ids,
    range_problem,
)
from ml_release.spec_sections import (
    CanarySpec,
    ContractSpec,
    CoverageSpec,
    EvaluationSpec,
    ServingSpec,
    ShadowSpec,
)
from ml_release.spec_tasks import (
    check_trusted_types,
    ranking_problems,
    task_gate_problem,
    task_problems,
)

Estimator = Literal["logistic_regression", "ridge", "hist_gradient_boosting", "random_forest"]


class ModelSpec(SpecModel):
    """The model being released."""

    name: str = Field(description="Model name; artifacts live under artifacts/<name>/.")
    task: Literal[
        "binary_classification", "multiclass_classification", "regression", "ranking", "llm"
    ] = Field(
        "binary_classification",
        description="`binary_classification` (data, features; labels 0/1), "
        "`multiclass_classification` (labels are classes; the model gives class probabilities), "
        "`regression` (numeric labels; the model predicts a number), `ranking` (data with "
        "`data.query_column`, features; the label is a graded relevance >= 0; the estimator "
        "is a classifier over the grades, scoring each row by its expected relevance) or `llm` "
        "(an LLM application gated on its prompt/config and answers; the `llm` section).",
    )
    estimator: Estimator = Field(
        "hist_gradient_boosting",
        description="Estimator trained in the pipeline when no artifact is given "
        "(`logistic_regression` for the classification tasks, `ridge` for regression; "
        "the other two fit every task).",
    )
    params: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="Estimator parameters (scikit-learn names)."
    )

    _check_name = field_validator("name")(identifier_field)


class FeatureSpec(SpecModel):
    """The model's features and the code that computes them for training and serving."""

    code: str = Field(
        description="Importable module with REQUIRED_COLUMNS and compute_features(raw)."
    )
    numeric: list[str]
    categorical: list[str] = Field(default_factory=list)

    @field_validator("numeric", "categorical")
    @classmethod
    def _check_columns(cls, value: list[str]) -> list[str]:
        return [check_identifier(v) for v in value]

    @field_validator("code")
    @classmethod
    def _check_code(cls, value: str) -> str:
        if not all(part.isidentifier() for part in value.split(".")):
            raise ValueError(f"{value!r} is not a module path such as `my_project.features`")
        try:
            found = importlib.util.find_spec(value)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ValueError(
                f"module {value!r} cannot be imported: check the name, or install or add the "
                "folder holding it to the project"
            )
        return value

    @model_validator(mode="after")
    def _distinct(self) -> "FeatureSpec":
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {both}")
        if len(set(self.all)) != len(self.all):
            raise ValueError("a feature is listed twice")
        return self

    @property
    def all(self) -> list[str]:
        """Numeric then categorical feature names."""
        return [*self.numeric, *self.categorical]


class GateSpec(SpecModel):
    """One entry of `gates:`: a catalog name, its id, whether it blocks, and its parameters."""

    name: str
    # The check's name: the gate name unless the entry says otherwise or shares its name and
    # target with another entry (ml_release.spec_gates.fill_gate_ids).
    id: str = ""
    must_pass: bool = True
    # SerializeAsAny: dump the concrete parameter model, so the spec hash covers thresholds.
    params: SerializeAsAny[GateParams]

    @model_validator(mode="before")
    @classmethod
    def _split_params(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("each gate is a mapping with at least `name`")
        raw = dict(raw)
        name = raw.pop("name", None)
        if name is None:
            raise ValueError("missing `name`: one of " + ", ".join(sorted(CATALOG)))
        if name not in CATALOG:
            raise ValueError(
                f"unknown gate {name!r}.{close_matches(str(name), tuple(CATALOG))} "
                f"Known gates: {', '.join(sorted(CATALOG))} (see docs/gates.md)"
            )
        must_pass = raw.pop("must_pass", True)
        gate_id = check_gate_id(raw.pop("id"), name) if "id" in raw else name
        params = CATALOG[name].params(**raw)
        if (problem := range_problem(name, params)) is not None:
            raise ValueError(problem)
        return {"name": name, "id": gate_id, "must_pass": must_pass, "params": params}

    @property
    def target(self) -> str:
        """The asset this gate's check is attached to."""
        return gate_target(self.name, self.params)

    @property
    def eval_set(self) -> str:
        """What the gate judges: its evaluation set (`holdout`, `serving`), else its target."""
        return getattr(self.params, "eval_set", None) or self.target


class ReleaseSpec(SpecModel):
    """The whole release spec."""

    version: Literal[1] = 1
    model: ModelSpec
    data: DataSpec | None = None
    features: FeatureSpec | None = None
    llm: LLMSpec | None = None
    contract: ContractSpec = Field(default_factory=ContractSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    shadow: ShadowSpec = Field(default_factory=ShadowSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)
    coverage: CoverageSpec = Field(default_factory=CoverageSpec)
    inconclusive: Literal["block", "warn"] = Field(
        "block", description="What an inconclusive gate does when it is `must_pass`."
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="Full names of model types (or functions) to load beyond the built-in "
        "allow-list, e.g. `my_team.encoders.TargetEncoder`; review each before listing it "
        "(docs/models.md).",
    )
    allow_ungated: bool = Field(
        False,
        description="Release without a must_pass model-quality gate (refused otherwise: such a "
        "spec cannot stop a model that predicts badly); every verdict table then says so.",
    )
    gates: list[GateSpec]

    _check_trusted = field_validator("trusted_types")(check_trusted_types)

    _source: Path = PrivateAttr(default=Path("release.yaml"))
    # Set by `ml_release.spec_set` where one location gates several specs: the model's name.
    _scope: str = PrivateAttr(default="")
    _definitions_source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _gate_ids(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "gates" in raw:
            return {**raw, "gates": fill_gate_ids(raw["gates"])}
        return raw

    @model_validator(mode="after")
    def _task_sections(self) -> "ReleaseSpec":
        llm = self.model.task == "llm"
        needed = ("llm",) if llm else ("data", "features")
        unused = ("data", "features") if llm else ("llm",)
        problems = [
            f"`{k}` is required for model.task {self.model.task}"
            for k in needed
            if getattr(self, k) is None
        ]
        problems += [
            f"`{k}` is not used by model.task {self.model.task}: remove it"
            for k in unused
            if getattr(self, k) is not None
        ]
        if llm and self.canary.enabled:
            problems.append("canary.enabled: canaries serve models, not prompt/configs; remove it")
        problems += ranking_problems(self) + task_problems(self)
        problems += blocking_problems(self.gates, self.allow_ungated)
        for i, gate in enumerate(self.gates):
            if (problem := task_gate_problem(self.model.task, gate.name)) is not None:
                problems.append(f"gates[{i}]: {problem}")
            elif llm and gate.name in [g.name for g in self.gates[:i]]:
                problems.append(f"gates[{i}]: {gate.name!r} is listed twice; merge the entries")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _columns_known(self) -> "ReleaseSpec":
        if self.features is None or self.data is None:
            return self
        features = self.features.all
        problems: list[str] = []

        def known(column: str, where: str, allowed: list[str]) -> None:
            if column not in allowed:
                problems.append(
                    f"{where}: unknown column {column!r}.{close_matches(column, allowed)} "
                    f"Use one of: {', '.join(allowed)}"
                )

        for column in self.contract.null_rate:
            known(column, f"contract.null_rate.{column}", features)
        for column in self.contract.ranges:
            known(column, f"contract.ranges.{column}", self.features.numeric)
        for column in self.contract.categories:
            known(column, f"contract.categories.{column}", self.features.categorical)
        for i, gate in enumerate(self.gates):
            for column in getattr(gate.params, "columns", None) or []:
                known(column, f"gates[{i}].columns", features)
            for column in getattr(gate.params, "segments", None) or []:
                known(column, f"gates[{i}].segments", self.data.segments)
        problems += duplicate_id_problems(self.gates)
        if self.shadow.batch_size > self.serving.max_rows:
            problems.append(
                f"shadow.batch_size: {self.shadow.batch_size} is more than serving.max_rows "
                f"({self.serving.max_rows}); every batch would be refused. Lower it"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def source(self) -> Path:
        """The file this spec was read from."""
        return self._source

    @property
    def scope(self) -> str:
        """The key prefix of this spec's assets: its model's name among several specs, else ""."""
        return self._scope

    @property
    def definitions_source(self) -> Path:
        """What a worker rebuilds the definitions from: this file, or the folder of specs."""
        return self._definitions_source or self._source

    def key(self, name: str) -> list[str]:
        """The asset key path of asset `name` of this spec (`keys.key_path`)."""
        return keys.key_path(self._scope, name)

    def named(self, name: str) -> str:
        """This spec's job, sensor, pool or op called `name` (`keys.scoped`)."""
        return keys.scoped(self._scope, name)

    @property
    def spec_hash(self) -> str:
        """sha256 of the normalised spec: verdicts record it to name the rules that made them."""
        data = self.model_dump(mode="json")
        # Keys added later leave the hash of a spec that does not use them unchanged, so the
        # verdicts already recorded under it keep counting.
        if not data["allow_ungated"]:
            del data["allow_ungated"]
        for gate in data["gates"]:
            if gate["id"] == gate["name"]:
                del gate["id"]
        canonical = json.dumps(data, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def source_for(self, dataset: str) -> SourceSpec:
        """The resolved source of `training_snapshot`, `evaluation_holdout` or `serving_log`."""
        if self.data is None:
            raise SpecError(f"{self.source}: model.task {self.model.task} has no `data` section")
        raw = {
            "training_snapshot": self.data.training,
            "evaluation_holdout": self.data.evaluation,
            "serving_log": self.data.serving_log,
        }[dataset]
        return raw.resolved(self.source.parent, release_home())

    def gates_for(self, target: str) -> list[GateSpec]:
        """The gates attached to one asset, in spec order."""
        return [g for g in self.gates if g.target == target]


def parse_spec(data: Any, source: Path) -> ReleaseSpec:
    """Validate an already-parsed YAML document."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the release spec must be a YAML mapping, not {type(data)}")
    try:
        spec = ReleaseSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(source, exc, data)) from None
    spec._source = source.resolve()
    return spec


def load_spec(path: Path | str) -> ReleaseSpec:
    """Read and validate a release spec, or raise SpecError saying what to fix."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            f"release spec not found: {path.resolve()}. Fix: run from the project root, pass "
            "--spec PATH, or set ML_RELEASE_SPEC."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(data, path)
