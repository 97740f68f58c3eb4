"""Regression and multi-class releases: the spec's rules, the examples end to end, bad models.

The examples (examples/regression, examples/multiclass, examples/own-pipeline) run on data
that ships with scikit-learn or on the demo data: each promotes a model and blocks another.
"""

import importlib.util

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_release.artifacts import writer
from ml_release.errors import DataInputError
from ml_release.evaluation.data import PredictionTables
from ml_release.evaluation.task_data import class_probabilities, load_multiclass_sets
from ml_release.home import registry_path, warehouse_path
from ml_release.registry import PRODUCTION, Registry
from ml_release.scoring import load_for_task
from ml_release.spec import parse_spec
from ml_release.warehouse import Warehouse
from tests.conftest import PROJECT, spec_error
from tests.own_types import ShareClassifier

EXAMPLES = PROJECT / "examples"


def example_spec(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name / "release.yaml").read_text())


def test_the_examples_specs_load():
    for name in ("regression", "multiclass", "own-pipeline"):
        spec = parse_spec(example_spec(name), EXAMPLES / name / "release.yaml")
        assert spec.gates


@pytest.mark.parametrize(
    ("example", "gate", "says"),
    [
        ("regression", "roc_auc_vs_baseline", "mae_vs_baseline"),
        ("regression", "segment_flip_rate", "compares predicted labels"),
        ("multiclass", "min_roc_auc", "macro_f1_vs_baseline"),
        ("own-pipeline", "mae_vs_baseline", "is a regression gate"),
    ],
)
def test_a_gate_of_another_task_is_refused_with_what_applies(tmp_path, example, gate, says):
    data = example_spec(example)
    extra = {"max_flip_rate": 0.1} if gate == "segment_flip_rate" else {}
    extra |= {"threshold": 0.5} if gate.startswith("min_") else {}
    extra |= {"max_drop": 0.01} if gate.endswith("_vs_baseline") else {}
    data["gates"].append({"name": gate, **extra})
    assert says in spec_error(tmp_path, data)


def test_canary_estimator_and_trusted_types_rules(tmp_path):
    data = example_spec("regression")
    data["canary"] = {"enabled": True}
    data["model"]["estimator"] = "logistic_regression"
    message = spec_error(tmp_path, data)
    assert "canary.score_shift_margin" in message and "target's units" in message
    assert "logistic_regression does not fit" in message
    data = example_spec("regression") | {"trusted_types": ["not a name", "numpy.log1p"]}
    assert "['not a name'] are not full dotted names" in spec_error(tmp_path, data)


@pytest.fixture()
def no_git(monkeypatch):
    monkeypatch.setattr(writer, "current_code_version", lambda: None)


def _run_example(name: str):
    path = EXAMPLES / name / "run.py"
    module_spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.main()


@pytest.mark.parametrize(
    ("name", "model", "kept", "blocked_by", "evidence"),
    [
        (
            "regression",
            "diabetes_progression",
            "ridge-good",
            "segment_mae_vs_baseline",
            "age_band=50_plus",
        ),
        ("multiclass", "digit_reader", "logistic-good", "class_recall_vs_baseline", "class=8"),
        (
            "own-pipeline",
            "credit_default_own",
            "hist-gradient-boosting",
            "segment_roc_auc_vs_baseline",
            "channel=partner",
        ),
    ],
)
@pytest.mark.slow
def test_example_promotes_one_model_and_blocks_the_other(
    home, no_git, capsys, name, model, kept, blocked_by, evidence
):
    assert _run_example(name) == 0
    out = capsys.readouterr().out
    assert "PROMOTED" in out and "BLOCKED" in out and blocked_by in out
    assert evidence in out.split("BLOCKED")[0].split("PROMOTED")[-1]  # the blocked run's table
    assert Registry(registry_path()).alias(model, PRODUCTION) == kept


def _multiclass_spec(tmp_path, **overrides):
    data = example_spec("multiclass") | overrides
    return parse_spec(data, EXAMPLES / "multiclass" / "release.yaml")


def test_probabilities_that_do_not_sum_to_one_are_refused_before_any_gate(tmp_path, no_git):
    spec = _multiclass_spec(tmp_path, trusted_types=["tests.own_types.ShareClassifier"])
    rows = pd.DataFrame({f"pixel_{r}_{c}": [0.0] * 3 for r in range(8) for c in range(8)})
    rows = rows.assign(row_id=["a", "b", "c"], label=["0", "1", "2"])
    model = ShareClassifier(scale=1.2).fit(rows.iloc[:, :64].to_numpy(), [0, 1, 2])
    folder = writer.write_artifact(
        model,
        tmp_path,
        name="digit_reader",
        features={"pixel_0_0": "numeric"},
        trusted_types=spec.trusted_types,
    )
    with pytest.raises(DataInputError, match="must sum to 1") as refused:
        class_probabilities(folder, spec, rows)
    assert "sum 1.2" in str(refused.value) and "row" in str(refused.value)


def test_a_regressor_under_a_classification_spec_is_refused_when_scored(tmp_path, no_git):
    from sklearn.linear_model import Ridge

    spec = _multiclass_spec(tmp_path)
    model = Ridge().fit(np.zeros((4, 1)), [0, 1, 2, 3])
    folder = writer.write_artifact(model, tmp_path, name="m", features={"pixel_0_0": "numeric"})
    with pytest.raises(DataInputError) as refused:
        load_for_task(folder, spec)
    message = str(refused.value)
    assert "expects a classifier" in message and "a regressor" in message and "Ridge" in message


def test_classes_that_differ_from_production_s_are_refused(home):
    warehouse = Warehouse(warehouse_path())
    base = pd.DataFrame({"eval_set": ["holdout"] * 2, "row_id": ["1", "2"], "label": ["a", "b"]})
    tables = PredictionTables("d" * 64)
    warehouse.replace_from_frame(
        tables.candidate, base.assign(proba__a=[0.5, 0.5], proba__b=[0.5, 0.5])
    )
    warehouse.replace_from_frame(
        tables.baseline, base.assign(proba__a=[0.5, 0.5], proba__c=[0.5, 0.5])
    )
    with pytest.raises(DataInputError) as refused:
        load_multiclass_sets(warehouse, tables, [], trivial_baseline=False)
    assert "['a', 'b'] differ from production's ['a', 'c']" in str(refused.value)
