"""The four model-side scenarios through the real asset graph, against a real production model."""

import pytest

from ml_release.cli import main
from ml_release.demo import model_scenarios
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.home import registry_path
from ml_release.publish import publish_candidate
from ml_release.registry import Registry
from tests.conftest import spec_dict

RAW = list(REQUIRED_COLUMNS)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo():
    """Full-size demo data: with fewer rows "identical up to noise" is honestly inconclusive."""
    from ml_release.demo.generate import generate

    return generate(seed=7, n_evaluation=30_000)


def _release(spec, tmp_path, model, version):
    folder = publish_candidate(model, spec, version=version, home=tmp_path / "published")
    code = main(["--spec", str(spec.source), "run", "--candidate", str(folder)])
    events = Registry(registry_path()).events(spec.model.name, ("promoted", "blocked"))
    verdicts = {g["gate"]: g["verdict"] for g in events[-1].verdicts}
    return code, events[-1], verdicts


def test_scenarios_against_a_logistic_production_model(make_release, demo, tmp_path):
    spec = make_release()
    assert main(["--spec", str(spec.source), "run"]) == 0  # production: the spec's model
    training = demo.training

    code, event, _ = _release(
        spec, tmp_path, model_scenarios.noise_twin(spec, training, RAW), "twin"
    )
    assert (code, event.event) == (0, "promoted")  # identical up to noise must pass

    code, event, verdicts = _release(
        spec, tmp_path, model_scenarios.miscalibrated(spec, training, RAW), "miscalibrated"
    )
    assert (code, event.event) == (1, "blocked")
    assert verdicts["calibration"] == "fail" and verdicts["log_loss_vs_baseline"] == "fail"
    assert verdicts["roc_auc_vs_baseline"] == "pass"  # the ranking did not change

    broken = model_scenarios.nan_outputs(
        model_scenarios.segment_regression(spec, training, RAW, "region", "coastal")
    )
    code, event, verdicts = _release(spec, tmp_path, broken, "nan-scores")
    assert (code, event.event) == (1, "blocked")
    assert verdicts["valid_predictions"] == "fail"
    assert verdicts["roc_auc_vs_baseline"] == "inconclusive"  # never a metric on NaN


def test_a_segment_regression_is_blocked_although_the_global_metric_improved(
    make_release, demo, tmp_path
):
    data = spec_dict()
    data["model"].update(
        estimator="hist_gradient_boosting", params={"max_iter": 25, "max_depth": 2}
    )
    for gate in data["gates"]:
        if gate["name"] == "segment_roc_auc_vs_baseline":
            gate["max_drop"] = 0.03
    spec = make_release(model=data["model"], gates=data["gates"])
    assert main(["--spec", str(spec.source), "run"]) == 0  # a weaker production model
    model = model_scenarios.segment_regression(spec, demo.training, RAW, "region", "coastal")
    code, event, verdicts = _release(spec, tmp_path, model, "segment-regression")
    assert (code, event.event) == (1, "blocked")
    assert verdicts["roc_auc_vs_baseline"] == "pass"
    assert verdicts["segment_roc_auc_vs_baseline"] == "fail"
