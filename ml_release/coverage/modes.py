"""The failure modes a coverage run injects, each with a documented strength.

A mode changes one thing against the healthy control: the data that arrives (the evaluation
holdout or the serving log, through the scenario injectors of `ml_release.demo.scenarios`),
the candidate model (trained differently, or its feature step pointed at
`ml_release.coverage.mutant`), or the candidate artifact (its manifest). Columns and features
are picked from the spec, so the modes apply to a team's own data.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_release.coverage.bench import Bench
from ml_release.demo import scenarios
from ml_release.demo.model_scenarios import miscalibrated, nan_outputs
from ml_release.errors import SpecError
from ml_release.feature_code import load_feature_code
from ml_release.gates.catalog import CATALOG, EVALUATION_FAMILIES
from ml_release.spec import ReleaseSpec

# Gate families judged in-process on every mode (cheap); the serving and shadow families start
# model servers, so a mode runs them only when it targets them (`--all-gates` runs them all).
IN_PROCESS_FAMILIES = ("data_contract", "parity", *EVALUATION_FAMILIES)
TABULAR_TASKS = ("binary_classification", "multiclass_classification", "regression")


@dataclass
class Injection:
    """What one mode changes: data tables, the candidate, its feature fault or its manifest."""

    evaluation: pd.DataFrame | None = None
    serving_log: pd.DataFrame | None = None
    model: Any = None  # None: the control candidate
    mutation: dict[str, Any] | None = None  # for ml_release.coverage.mutant
    manifest: dict[str, Any] = field(default_factory=dict)  # keys replaced in manifest.json


@dataclass(frozen=True)
class FailureMode:
    """One way a release goes wrong, how strongly it is injected, and what it targets."""

    name: str
    title: str
    families: tuple[str, ...]
    strength: float
    unit: str
    inject: Callable[[Bench, float], Injection]
    sweep: tuple[float, ...] = ()  # strengths tried by --sweep, weakest first
    requires: str = ""  # "shadow" or "canary": the mode applies only when the spec has them
    phase: str = "release"  # "canary": the fault appears only once the canary job runs
    raw_kind: str = ""  # "categorical": it damages a raw categorical column, which must exist
    # An error that stops the run counts as caught only when it matches this (a regular
    # expression over "<error class>: <message>"): the clear refusal the mode should get.
    # Any other error is a crash, reported as errored, never as caught.
    expects_error: str = ""
    tasks: tuple[str, ...] = TABULAR_TASKS  # the model.task values the mode is defined for

    def describe(self, strength: float | None = None) -> str:
        """Title and strength, as the matrix prints them."""
        value = self.strength if strength is None else strength
        return f"{self.title} ({value:g} {self.unit})" if self.unit else self.title


def _mutation(bench: Bench, kind: str, **fields: Any) -> Injection:
    return Injection(mutation={"kind": kind, "fill": bench.medians(), **fields})


def _schema_rename(b: Bench, s: float) -> Injection:
    column = b.numeric_raw()
    typo = column.replace("_", "", 1) if "_" in column else column + "s"
    return Injection(evaluation=scenarios.rename_column(b.evaluation, column, typo))


def _schema_dtype(b: Bench, s: float) -> Injection:
    return Injection(evaluation=scenarios.change_dtype(b.evaluation, b.numeric_raw()))


def _null_flood(b: Bench, s: float) -> Injection:
    return Injection(evaluation=scenarios.null_flood(b.evaluation, b.numeric_raw(), rate=s))


def _unseen(b: Bench, s: float) -> Injection:
    return Injection(evaluation=scenarios.unseen_categories(b.evaluation, b.categorical_raw(), s))


def _range(b: Bench, s: float) -> Injection:
    declared = [c for c in b.spec.contract.ranges if b.raw_columns.get(c) == "numeric"]
    column = declared[0] if declared else b.numeric_raw()  # a declared range first
    return Injection(evaluation=scenarios.out_of_range(b.evaluation, column, rate=s))


def _shift(b: Bench, s: float) -> Injection:
    column = b.numeric_raw()
    return Injection(evaluation=scenarios.distribution_shift(b.evaluation, column, strength=s))


def _skew(b: Bench, s: float) -> Injection:
    feature = b.spec.features.numeric[0]
    log = scenarios.training_serving_skew(
        b.serving_log,
        feature,
        transform=lambda v: v * s,
        column=b.spec.data.serving_log.logged_features_column,
    )
    return Injection(serving_log=log)


def _global_drop(b: Bench, s: float) -> Injection:
    return _mutation(b, "noise", rate=s)


def _segment_drop(b: Bench, s: float) -> Injection:
    column, value = b.segment()
    return _mutation(b, "segment", column=column, value=value, rate=s)


def _calibration(b: Bench, s: float) -> Injection:
    if b.spec.model.task == "regression":  # a label-unit bug: every prediction s x too high
        labels = b.training[b.spec.data.label].to_numpy(dtype="float64") * (1 + s)
        return Injection(model=b.fit(b.spec.model.estimator, dict(b.spec.model.params), labels))
    return Injection(model=miscalibrated(b.spec, b.training, list(b.raw_columns)))


def _non_finite(b: Bench, s: float) -> Injection:
    trees = b.fit("hist_gradient_boosting", {"max_iter": 30, "random_state": 0})
    return Injection(model=nan_outputs(trees, leaves=int(s)))


def _latency(b: Bench, s: float) -> Injection:
    return _mutation(b, "delay", ms=s)


def _memory(b: Bench, s: float) -> Injection:
    return _mutation(b, "memory", mb=s)


def _output_schema(b: Bench, s: float) -> Injection:
    """The classes come back renamed: "yes"/"no" for 0/1, "class_3" for 3."""
    label = b.training[b.spec.data.label]
    if b.spec.model.task == "binary_classification":
        labels = np.where(label.astype(bool), "yes", "no")
    else:
        labels = ("class_" + label.astype(str)).to_numpy()
    return Injection(model=b.fit(b.spec.model.estimator, dict(b.spec.model.params), labels))


def _batch(b: Bench, s: float) -> Injection:
    return _mutation(b, "batch", feature=b.spec.features.numeric[0])


def _library(b: Bench, s: float) -> Injection:
    return Injection(manifest={"library_versions": {"scikit_learn": "1.0.2"}})


def _error_burst(b: Bench, s: float) -> Injection:
    return _mutation(b, "error", rate=s)


def _shadow(b: Bench, s: float) -> Injection:
    return _mutation(b, "skew", feature=b.spec.features.numeric[0], factor=s)


DATA, QUALITY = ("data_contract", "parity"), EVALUATION_FAMILIES
CLASSIFICATION = ("binary_classification", "multiclass_classification")
MODES: tuple[FailureMode, ...] = (
    FailureMode(
        "renamed_column",
        "schema change: a column renamed",
        DATA,
        1,
        "",
        _schema_rename,
        expects_error=r"^DataInputError: .*column '[^']+' is missing",
    ),
    FailureMode(
        "changed_dtype",
        "schema change: numbers sent as strings",
        DATA,
        1,
        "",
        _schema_dtype,
        expects_error=r"^DataInputError: .*column '[^']+' must be numeric",
    ),
    FailureMode(
        "null_flood",
        "null flood in one column",
        DATA,
        0.3,
        "share null",
        _null_flood,
        (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3),
    ),
    FailureMode(
        "unseen_categories",
        "unseen categories",
        DATA,
        0.2,
        "share of rows",
        _unseen,
        raw_kind="categorical",
    ),
    FailureMode("range_anomaly", "values out of range (x25)", DATA, 0.05, "share of rows", _range),
    FailureMode(
        "distribution_shift",
        "distribution shift",
        DATA,
        1.0,
        "std shift",
        _shift,
        (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    ),
    FailureMode(
        "training_serving_skew",
        "training-serving skew in one feature",
        ("parity",),
        100,
        "x in the serving log",
        _skew,
    ),
    FailureMode(
        "global_quality_drop",
        "global quality drop",
        QUALITY,
        0.3,
        "share of rows blanked",
        _global_drop,
        (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3),
    ),
    FailureMode(
        "segment_regression",
        "single-segment regression",
        QUALITY,
        0.5,
        "share of the segment's rows blanked",
        _segment_drop,
        (0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
    ),
    FailureMode(
        "calibration_worsened",
        "calibration worsened",
        QUALITY,
        0.2,
        "",
        _calibration,
        tasks=("binary_classification", "regression"),
    ),
    FailureMode("non_finite_outputs", "non-finite outputs", QUALITY, 1, "NaN leaves", _non_finite),
    FailureMode(
        "latency_regression",
        "latency regression",
        ("serving",),
        30,
        "ms added per request",
        _latency,
        (2, 5, 10, 20, 30),
    ),
    FailureMode("memory_growth", "memory growth", ("serving",), 300, "MB held", _memory),
    FailureMode(
        "output_schema_change",
        "output-schema change",
        ("serving",),
        1,
        "",
        _output_schema,
        tasks=CLASSIFICATION,
        # multi-class: the renamed classes are refused before scoring (binary: a serving gate)
        expects_error=r"^DataInputError: .*class\(es\) .* that the model's classes .* do not",
    ),
    FailureMode(
        "batch_single_disagreement",
        "batch-versus-single disagreement",
        ("serving",),
        1,
        "",
        _batch,
    ),
    FailureMode(
        "incompatible_library", "incompatible library version", ("serving",), 1, "", _library
    ),
    FailureMode(
        "shadow_disagreement",
        "shadow disagreement: serving code changed",
        ("shadow",),
        100,
        "x one feature",
        _shadow,
        requires="shadow",
    ),
    FailureMode(
        "canary_error_burst",
        "canary error burst: errors once live traffic arrives",
        ("canary",),
        0.2,
        "share of requests failing",
        _error_burst,
        requires="canary",
        phase="canary",
    ),
)
BY_NAME = {mode.name: mode for mode in MODES}


def mutation_json(injection: Injection) -> str:
    """The mutation as the environment variable carries it."""
    return json.dumps(injection.mutation or {})


def applicable(spec: ReleaseSpec, names: list[str] | None = None) -> tuple[list, dict[str, str]]:
    """The modes to run for `spec` (all, or `names`), and why the others do not apply."""
    if names:
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise SpecError(
                f"unknown failure mode(s) {', '.join(unknown)}; use: {', '.join(BY_NAME)}"
            )
    families = {CATALOG[g.name].family for g in spec.gates}
    raw_kinds = set(load_feature_code(spec.features.code).required_columns.values())
    chosen, skipped = [], {}
    for mode in MODES:
        if names and mode.name not in names:
            continue
        if spec.model.task not in mode.tasks:
            skipped[mode.name] = f"not defined for model.task {spec.model.task}"
            continue
        if mode.raw_kind and mode.raw_kind not in raw_kinds:
            skipped[mode.name] = f"the feature code reads no {mode.raw_kind} raw column"
            continue
        if mode.requires == "canary" and not spec.canary.enabled:
            skipped[mode.name] = "canary.enabled is false in the spec"
            continue
        if mode.requires and mode.requires != "canary" and mode.requires not in families:
            skipped[mode.name] = f"the spec has no {mode.requires} gate"
            continue
        chosen.append(mode)
    return chosen, skipped
