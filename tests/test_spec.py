"""The release spec: the project's own spec loads; each kind of bad spec is one clear error."""

import math

import pytest

from ml_release.errors import SpecError
from ml_release.identifiers import check_identifier, quote
from ml_release.spec import load_spec
from tests.conftest import PROJECT, spec_dict, spec_error, write_spec


def test_project_spec_loads():
    spec = load_spec(PROJECT / "release.yaml")
    assert spec.model.name == "credit_default"
    assert [g.name for g in spec.gates][:2] == ["feature_schema", "null_rate_threshold"]
    assert spec.gates[0].must_pass is True
    assert len(spec.spec_hash) == 64


def test_spec_hash_changes_with_the_rules(tmp_path):
    base = spec_dict()
    first = load_spec(write_spec(tmp_path, base)).spec_hash
    base["gates"][2]["max_out_of_range_rate"] = 0.5
    assert load_spec(write_spec(tmp_path, base)).spec_hash != first


def test_unknown_gate_names_the_path_and_suggests(tmp_path):
    data = spec_dict()
    data["gates"][1]["name"] = "null_rate_treshold"
    message = spec_error(tmp_path, data)
    assert "gates[1]" in message
    assert "'null_rate_threshold'" in message  # the suggested fix


def test_unknown_gate_parameter(tmp_path):
    data = spec_dict()
    data["gates"][2]["max_drop"] = 0.1
    message = spec_error(tmp_path, data)
    assert "gates[2].max_drop" in message and "unknown key" in message


@pytest.mark.parametrize("value", [math.nan, -0.1, 1.5, "high"])
def test_bad_threshold(tmp_path, value):
    data = spec_dict()
    data["gates"][1]["max_null_rate"] = value
    assert "gates[1].max_null_rate" in spec_error(tmp_path, data)


def test_unknown_column_in_contract(tmp_path):
    data = spec_dict()
    data["contract"]["ranges"]["agee"] = {"min": 0, "max": 1}
    message = spec_error(tmp_path, data)
    assert "contract.ranges.agee" in message and "'age'" in message


def test_unknown_column_in_gate_columns(tmp_path):
    data = spec_dict()
    data["gates"][4]["columns"] = ["log_incme"]
    message = spec_error(tmp_path, data)
    assert "gates[4].columns" in message and "'log_income'" in message


def test_min_greater_than_max(tmp_path):
    data = spec_dict()
    data["contract"]["ranges"]["age"] = {"min": 100, "max": 18}
    assert "contract.ranges.age" in spec_error(tmp_path, data)


@pytest.mark.parametrize(
    "name", ['age"; DROP TABLE training_features; --', "\u0430ge", "age col", "1age", ""]
)
def test_unsafe_identifier(tmp_path, name):
    data = spec_dict()
    data["features"]["numeric"] = [name, *data["features"]["numeric"][1:]]
    assert "not a safe identifier" in spec_error(tmp_path, data)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="release spec not found"):
        load_spec(tmp_path / "nope.yaml")


def test_missing_feature_code_module(tmp_path):
    data = spec_dict()
    data["features"]["code"] = "no_such_package.features"
    assert "cannot be imported" in spec_error(tmp_path, data)


def test_duplicate_gate_on_the_same_dataset(tmp_path):
    data = spec_dict()
    data["gates"].append({"name": "feature_schema"})
    assert "listed twice" in spec_error(tmp_path, data)


def test_source_needs_one_kind(tmp_path):
    data = spec_dict()
    data["data"]["training"] = {"path": "a.parquet", "duckdb": "b.duckdb", "table": "t"}
    assert "data.training" in spec_error(tmp_path, data)


def test_invalid_yaml(tmp_path):
    (tmp_path / "release.yaml").write_text("gates: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "release.yaml")


def test_identifiers_are_quoted_after_validation():
    assert quote("age") == '"age"'
    with pytest.raises(ValueError):
        check_identifier('a"b')
