"""The ranking spec: the example loads; each kind of bad ranking spec is one clear error."""

import pytest
import yaml

from ml_release.spec import load_spec
from tests.conftest import PROJECT, spec_dict, spec_error

EXAMPLE = PROJECT / "examples" / "ranking" / "release.yaml"


def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_loads_with_its_ranking_gates():
    spec = load_spec(EXAMPLE)
    assert spec.model.task == "ranking" and spec.data.query_column == "query_id"
    ranking = [g for g in spec.gates if g.target == "evaluation_report"]
    assert {g.name for g in ranking} >= {
        "valid_predictions",
        "min_ndcg_at_k",
        "ndcg_at_k_vs_baseline",
        "segment_ndcg_at_k_vs_baseline",
    }
    assert all(g.params.k == 10 for g in ranking if g.name != "valid_predictions")


def test_ranking_needs_a_query_column(tmp_path):
    data = _example()
    del data["data"]["query_column"]
    assert "data.query_column: model.task ranking needs" in spec_error(tmp_path, data)


def test_query_column_must_be_a_safe_identifier(tmp_path):
    data = _example()
    data["data"]["query_column"] = 'query"; DROP TABLE x; --'
    assert "data.query_column" in spec_error(tmp_path, data)


def test_classification_gate_is_refused_for_ranking_with_the_fix(tmp_path):
    data = _example()
    data["gates"].append({"name": "roc_auc_vs_baseline", "max_drop": 0.01})
    message = spec_error(tmp_path, data)
    index = len(data["gates"]) - 1
    assert (
        f"gates[{index}] (gate roc_auc_vs_baseline): 'roc_auc_vs_baseline' is a classification"
        in message
    )
    assert "ndcg_at_k_vs_baseline" in message  # the fix


def test_serving_gate_and_canary_are_refused_for_ranking(tmp_path):
    data = _example()
    data["gates"].append({"name": "serving_load_time", "max_seconds": 30})
    assert "not available for model.task ranking" in spec_error(tmp_path, data)
    data = _example()
    data["canary"] = {"enabled": True}
    assert "canary.enabled" in spec_error(tmp_path, data)


def test_ranking_gate_and_query_column_are_refused_for_classification(tmp_path):
    data = spec_dict()
    data["gates"].append({"name": "min_ndcg_at_k", "threshold": 0.5})
    assert "'min_ndcg_at_k' needs model.task ranking" in spec_error(tmp_path, data)
    data = spec_dict()
    data["data"]["query_column"] = "customer_id"
    assert "data.query_column is only used by model.task ranking" in spec_error(tmp_path, data)


@pytest.mark.parametrize("k", [0, -3, 1.5, "ten"])
def test_k_must_be_a_positive_integer(tmp_path, k):
    data = _example()
    data["gates"][6]["k"] = k
    assert "gates[6].k" in spec_error(tmp_path, data)


def test_vs_baseline_needs_exactly_one_margin_and_segments_must_be_known(tmp_path):
    data = _example()
    data["gates"][6]["max_relative_drop"] = 0.02
    assert "exactly one of `max_drop`" in spec_error(tmp_path, data)
    data = _example()
    data["gates"][7]["segments"] = ["markte"]
    assert (
        "gates[7].segments (gate segment_ndcg_at_k_vs_baseline): unknown column 'markte'"
        in spec_error(tmp_path, data)
    )
