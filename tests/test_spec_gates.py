"""The `gates:` list as a whole: ids for one gate on several sets, a spec that can block, bounds."""

import numpy as np
import pytest

from ml_release.evaluation.run import judge
from ml_release.gates.result import Verdict
from ml_release.spec import load_spec
from tests.conftest import PROJECT, spec_dict, spec_error, write_spec
from tests.test_evaluation_gates import _set

AUC = {"name": "roc_auc_vs_baseline", "max_drop": 0.01}


def _with_gates(*extra: dict, **keys) -> dict:
    data = spec_dict(**keys)
    data["gates"] = [*data["gates"], *extra]
    return data


def test_one_gate_name_on_the_holdout_and_on_serving_traffic(tmp_path):
    data = spec_dict()
    data["gates"] = [g for g in data["gates"] if g.get("eval_set") != "serving"]
    data["gates"].append({**AUC, "eval_set": "serving", "must_pass": False})
    spec = load_spec(write_spec(tmp_path, data))
    auc = [g for g in spec.gates if g.name == "roc_auc_vs_baseline"]
    # The holdout entry keeps the name it had when listed once: ledgers keep their meaning.
    assert [(g.id, g.eval_set, g.target) for g in auc] == [
        ("roc_auc_vs_baseline", "holdout", "evaluation_report"),
        ("roc_auc_vs_baseline_serving", "serving", "evaluation_report"),
    ]


def test_a_gate_listed_once_keeps_its_name_whatever_it_judges(tmp_path):
    data = spec_dict()
    data["gates"] = [
        {**g, "eval_set": "serving"} if g["name"] == "log_loss_vs_baseline" else g
        for g in data["gates"]
    ]
    spec = load_spec(write_spec(tmp_path, data))
    assert [g.id for g in spec.gates if g.name == "log_loss_vs_baseline"] == [
        "log_loss_vs_baseline"
    ]


def test_the_same_gate_twice_on_one_set_needs_ids(tmp_path):
    data = _with_gates({**AUC, "max_drop": 0.05})
    message = spec_error(tmp_path, data)
    assert "listed twice for 'evaluation_report'" in message and "its own `id`" in message
    data = _with_gates({**AUC, "max_drop": 0.05, "id": "roc_auc_loose"})
    spec = load_spec(write_spec(tmp_path, data))
    assert "roc_auc_loose" in [g.id for g in spec.gates]


@pytest.mark.parametrize(
    ("gate_id", "expected"),
    [("auc on serving", "not a valid check name"), ("min_roc_auc", "name of another gate")],
)
def test_bad_gate_ids(tmp_path, gate_id, expected):
    message = spec_error(tmp_path, _with_gates({**AUC, "eval_set": "serving", "id": gate_id}))
    assert expected in message


def test_spec_hash_is_unchanged_by_the_defaults_of_the_new_keys(tmp_path):
    base = spec_dict()
    first = load_spec(write_spec(tmp_path, base)).spec_hash
    explicit = spec_dict(allow_ungated=False)
    explicit["gates"][0]["id"] = explicit["gates"][0]["name"]
    assert load_spec(write_spec(tmp_path, explicit)).spec_hash == first
    renamed = spec_dict()
    renamed["gates"][0]["id"] = "schema"
    assert load_spec(write_spec(tmp_path, renamed)).spec_hash != first


def test_the_demo_spec_flags_a_candidate_better_on_the_holdout_but_worse_on_recent_traffic():
    spec = load_spec(PROJECT / "release.yaml")
    holdout = _set(candidate_quality=1.15, seed=1)["holdout"]
    served = _set(candidate_quality=0.7, seed=2)["holdout"]
    served.name = "serving"
    sets = {"holdout": holdout, "serving": served}
    verdicts = {
        g.id: judge(g, sets, spec).verdict for g in spec.gates if g.name == "roc_auc_vs_baseline"
    }
    assert verdicts == {
        "roc_auc_vs_baseline": Verdict.PASS,
        "roc_auc_vs_baseline_serving": Verdict.FAIL,
    }


@pytest.mark.parametrize(
    "gates",
    [
        [],
        [{"name": "feature_schema"}, {"name": "valid_predictions"}],
        [{"name": "feature_schema"}, {**AUC, "must_pass": False}],
    ],
    ids=["no gates", "data gates only", "quality only as a warning"],
)
def test_a_spec_that_cannot_block_a_bad_model_is_refused(tmp_path, gates):
    message = spec_error(tmp_path, spec_dict(gates=gates))
    assert "no must_pass model-quality gate" in message and "allow_ungated: true" in message
    assert load_spec(write_spec(tmp_path, spec_dict(gates=gates, allow_ungated=True)))


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ({"name": "min_roc_auc", "threshold": -1}, "outside the range of roc_auc, [0, 1]"),
        ({"name": "min_pr_auc", "threshold": 1.2}, "could never pass"),
        ({"name": "max_log_loss", "threshold": -0.1}, "range of log_loss, [0, inf]"),
        ({**AUC, "max_drop": 1.0}, "whole range of roc_auc, [0, 1]"),
        (
            {"name": "segment_f1_vs_baseline", "max_drop": 2, "min_support": 50},
            "never fail",
        ),
    ],
)
def test_thresholds_outside_the_metric_range_are_refused(tmp_path, gate, expected):
    message = spec_error(tmp_path, _with_gates(gate))
    assert "gates[" in message and expected in message


def test_thresholds_inside_the_range_load(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path,
            _with_gates(
                {"name": "min_pr_auc", "threshold": 0.0},
                {"name": "max_log_loss", "threshold": 12.5},
                {"name": "f1_vs_baseline", "max_drop": 0.99},
            ),
        )
    )
    ceiling = next(g for g in spec.gates if g.name == "max_log_loss")
    assert np.isclose(ceiling.params.threshold, 12.5)


def test_regression_bounds_are_checked(tmp_path):
    data = load_spec(PROJECT / "examples" / "regression" / "release.yaml")
    assert [g.id for g in data.gates if g.name == "max_mae"] == ["max_mae"]
    from ml_release.spec_gates import range_problem

    gate = next(g for g in data.gates if g.name == "max_mae")
    bad = gate.params.model_copy(update={"threshold": -1.0})
    assert "outside the range of mae, [0, inf]" in range_problem("max_mae", bad)


def test_both_entries_are_checks_in_the_run_the_table_and_the_ledger(make_release, capsys):
    from ml_release.cli import main
    from ml_release.home import registry_path
    from ml_release.registry import Registry

    gates = [
        {**g, "must_pass": True} if g.get("eval_set") == "serving" else g
        for g in spec_dict()["gates"]
    ]
    spec = make_release(gates=gates)
    assert main(["--spec", str(spec.source), "run"]) == 0
    out = capsys.readouterr().out
    assert "roc_auc_vs_baseline_serving" in out and "evaluation_report (serving)" in out
    promoted = Registry(registry_path()).events(spec.model.name, ("promoted",))[-1]
    judged = {v["gate"]: v["eval_set"] for v in promoted.verdicts}
    assert judged["roc_auc_vs_baseline"] == "holdout"
    assert judged["roc_auc_vs_baseline_serving"] == "serving"
    assert judged["feature_schema"] == "evaluation_features"
