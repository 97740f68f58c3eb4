"""A team's own models in the serving runtime: served, measured, shadowed and canaried.

The runtime's own environment (runtime-requirements.txt) carries XGBoost and LightGBM; a
regressor answers `prediction`, a multi-class model one `proba_<class>` per class.
"""

import json

import numpy as np
import pandas as pd
import pytest

from ml_release.artifacts import read_manifest, writer
from ml_release.artifacts.skops_io import load_model
from ml_release.canary.rollout import Candidate, rollout
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.gates.result import Verdict
from ml_release.registry import PRODUCTION, Registry
from ml_release.serving.client import V2Client, encode_request
from ml_release.serving.gates import JUDGES as SERVING_JUDGES
from ml_release.serving.run import run_serving_checks
from ml_release.serving.server import serve_artifact
from ml_release.shadow.gates import judge as judge_shadow
from ml_release.shadow.replay import LoggedRequests
from ml_release.shadow.run import run_shadow
from ml_release.spec import GateSpec, ServingSpec, parse_spec
from ml_release.store import register_stored, store_artifact
from tests import own_models
from tests.conftest import PROJECT, spec_dict
from tests.serving_support import ref, server_options

pytestmark = pytest.mark.slow
RAW = own_models.RAW
NO_INCOME = {k: v for k, v in REQUIRED_COLUMNS.items() if k != "annual_income"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo):
    """Own models published as the tests need them: binary, regression, multi-class."""
    writer.current_code_version = lambda: None
    root = tmp_path_factory.mktemp("store")
    staging = tmp_path_factory.mktemp("staging")
    training = demo.training
    channel = training.assign(defaulted=training["channel"].astype(str))  # 4 classes

    def publish(name, version, model, features=REQUIRED_COLUMNS, task=None):
        written = writer.write_artifact(
            model, staging, name=name, version=version, features=features, task=task
        )
        return store_artifact(written, root, move=True)[1]

    folders = {
        "hgb": publish("credit_default", "hgb", own_models.native_categorical(training)),
        "lightgbm": publish("credit_default", "lgbm", own_models.boosted(training, "lightgbm")),
        "xgboost": publish("credit_default", "xgb", own_models.boosted(training, "xgboost")),
        "regression": publish(
            "income", "hgb", own_models.native_categorical(training, regression=True), NO_INCOME
        ),
        # A regressor trained on incomes half as high again: its predictions moved, its errors grew.
        "regression_shifted": publish(
            "income",
            "hgb-x1.5",
            own_models.native_categorical(
                training.assign(annual_income=training["annual_income"] * 1.5), regression=True
            ),
            NO_INCOME,
        ),
        "multiclass_twin": publish(
            "channel",
            "hgb-b",
            own_models.native_categorical(channel.sample(frac=0.7, random_state=1)),
            task="multiclass_classification",
        ),
        "multiclass": publish(
            "channel",
            "hgb",
            own_models.native_categorical(channel),
            task="multiclass_classification",
        ),
    }
    return root, folders, server_options(tmp_path_factory.mktemp("app"))


def test_own_models_answer_in_the_runtime_as_they_do_in_process(store, demo, tmp_path):
    root, folders, options = store
    rows = demo.evaluation.head(50)
    for key in ("xgboost", "lightgbm", "regression", "multiclass"):
        manifest = read_manifest(folders[key])
        features = {f.name: f.dtype for f in manifest.features}
        model = load_model(folders[key], root)
        with serve_artifact(
            folders[key], root, tmp_path / key, options, manifest.name, manifest.version
        ) as server:
            client = V2Client(server.port)
            status, content, _ = client.infer(manifest.name, encode_request(rows, features))
            client.close()
        assert status == 200, content[:500]
        outputs = {o["name"]: o["data"] for o in json.loads(content)["outputs"]}
        x = rows[list(features)]
        if key == "regression":
            assert set(outputs) == {"prediction"}
            assert np.allclose(outputs["prediction"], model.predict(x), rtol=1e-9)
        else:
            proba = np.column_stack(
                [outputs[c] for c in manifest.output_schema.probability_columns]
            )
            assert np.allclose(proba, model.predict_proba(x), atol=1e-9)
            assert len(outputs) == len(manifest.output_schema.classes) + 1  # and `label`


SERVING_GATES = [
    GateSpec.model_validate({"name": name})
    for name in ("batch_single_agreement", "output_schema_stable", "runtime_compatible")
]


@pytest.mark.parametrize("key", ["regression", "multiclass"])
def test_regression_and_multiclass_pass_the_serving_gates(store, demo, tmp_path, key):
    root, folders, options = store
    manifest = read_manifest(folders[key])
    contract = {f.name: f.dtype for f in manifest.features}
    settings = ServingSpec(requests=40, warmup=5, batch_sizes=[16], batch_repeats=2)
    version = ref(manifest.version, folders[key])
    report = run_serving_checks(
        version,
        version,
        root,
        demo.evaluation[list(contract)].head(200),
        contract,
        settings,
        options,
        tmp_path / "work",
        manifest.name,
    )
    results = {g.name: SERVING_JUDGES[g.name](g, report) for g in SERVING_GATES}
    assert all(r.verdict is Verdict.PASS for r in results.values()), {
        n: r.summary for n, r in results.items()
    }
    expected = ["prediction"] if key == "regression" else manifest.output_schema.probability_columns
    assert report.candidate.probability_columns == expected


def _window(demo, label="defaulted") -> LoggedRequests:
    log = demo.serving_log.sort_values("event_time").head(300)
    return LoggedRequests(
        request_ids=log["request_id"].tolist(),
        raw=pd.DataFrame([json.loads(t) for t in log["request"]]),
        logged_score=log["prediction"].to_numpy(float),
        logged_latency_ms=log["latency_ms"].to_numpy(float),
        labels=pd.to_numeric(log[label], errors="coerce").to_numpy(float),
    )


def test_a_multiclass_model_shadows_production_by_its_most_probable_class(store, demo, tmp_path):
    root, folders, options = store
    gates = [
        {"name": "shadow_agreement", "min_agreement": 0.95},
        {"name": "shadow_error_rate", "max_error_rate": 0.02},
        {"name": "segment_flip_rate", "max_flip_rate": 0.1, "min_support": 100},
    ]
    data = spec_dict(gates=gates, shadow={"requests": 300, "concurrency": 2}, allow_ungated=True)
    data["model"] = {"name": "channel", "task": "multiclass_classification"}
    spec = parse_spec(data, PROJECT / "release.yaml")
    version = ref("hgb", folders["multiclass"])
    report = run_shadow(
        version, version, root, _window(demo), dict(REQUIRED_COLUMNS), spec, options, tmp_path
    )
    results = {g.name: judge_shadow(g, report, spec) for g in spec.gates}
    assert all(r.verdict is Verdict.PASS for r in results.values()), {
        n: (r.verdict, r.summary) for n, r in results.items()
    }
    assert results["shadow_agreement"].observed == 1.0
    assert report.labels("candidate").max() > 1  # class positions, not a 0/1 threshold


def test_an_own_pipeline_goes_through_a_canary(store, demo, tmp_path):
    root, folders, options = store
    registry = Registry(tmp_path / "registry.duckdb")
    for key in ("hgb", "lightgbm"):
        register_stored(registry, read_manifest(folders[key]), folders[key])
    registry.move_production("credit_default", "hgb", expected=None, event="promoted", step="p")
    canary = {
        "enabled": True,
        "steps": [50.0, 100.0],
        "requests_per_step": 150,
        "error_margin": 0.05,
        "score_shift_margin": 0.1,
    }
    spec = parse_spec(spec_dict(canary=canary), PROJECT / "release.yaml")
    manifest = read_manifest(folders["lightgbm"])
    result = rollout(
        spec,
        registry,
        Candidate("lgbm", manifest.sha256, folders["lightgbm"]),
        ref("hgb", folders["hgb"]),
        root,
        _window(demo),
        dict(REQUIRED_COLUMNS),
        options,
        tmp_path / "work",
        tmp_path / "canary" / "credit_default.json",
    )
    assert [look.step for look in result.looks] == [50, 100]
    assert all(look.decision is not Verdict.FAIL for look in result.looks), result.reason
    assert result.looks[-1].served["candidate"] > 0
    if result.verdict is Verdict.PASS:
        assert registry.alias("credit_default", PRODUCTION) == "lgbm"


@pytest.mark.parametrize(
    ("production", "candidate", "task", "target"),
    [
        ("regression", "regression_shifted", "regression", "annual_income"),
        ("multiclass", "multiclass_twin", "multiclass_classification", "channel"),
    ],
)
def test_a_regressor_and_a_multiclass_model_go_through_a_canary(
    store, demo, tmp_path, production, candidate, task, target
):
    """The shifted regressor is aborted by the canary; the multi-class retrain is not."""
    root, folders, options = store
    registry = Registry(tmp_path / "registry.duckdb")
    manifests = {key: read_manifest(folders[key]) for key in (production, candidate)}
    for key, manifest in manifests.items():
        register_stored(registry, manifest, folders[key])
    name, live = manifests[production].name, manifests[production].version
    registry.move_production(name, live, expected=None, event="promoted", step="p")
    window = _window(demo)
    window.labels = window.raw[target].to_numpy()  # the label arrived with every request
    if task == "regression":
        model = load_model(folders[production], root)
        predicted = model.predict(window.raw[list(NO_INCOME)])
        error = float(np.mean(np.abs(predicted - window.labels)))
        margins = {"score_shift_margin": 0.25 * float(np.std(predicted)), "quality_margin": error}
    else:
        margins = {"score_shift_margin": 0.1, "quality_margin": 0.3}
    canary = {
        "enabled": True,
        "steps": [50.0, 100.0],
        "requests_per_step": 150,
        "error_margin": 0.05,
        **margins,
    }
    gates = [{"name": "shadow_error_rate", "max_error_rate": 0.02}]
    data = spec_dict(gates=gates, canary=canary, allow_ungated=True)
    data["model"] = {"name": name, "task": task, "estimator": "hist_gradient_boosting"}
    spec = parse_spec(data, PROJECT / "release.yaml")
    manifest = manifests[candidate]
    result = rollout(
        spec,
        registry,
        Candidate(manifest.version, manifest.sha256, folders[candidate]),
        ref(live, folders[production]),
        root,
        window,
        {f.name: f.dtype for f in manifest.features},
        options,
        tmp_path / "work",
        tmp_path / "canary" / f"{name}.json",
    )
    last = result.looks[-1]
    assert last.results["quality"].n_candidate > 0  # labelled requests were judged
    if task == "regression":
        assert result.verdict is Verdict.FAIL, result.reason
        assert last.results["score_shift"].decision is Verdict.FAIL
        assert "mean prediction" in result.reason
        assert registry.events(name)[-1].event == "canary_aborted"
        assert registry.alias(name, PRODUCTION) == live
    else:
        assert all(look.decision is not Verdict.FAIL for look in result.looks), result.reason
        assert result.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE), result.reason
