"""A team's own fitted models: published as they are, loaded safely, refused when they do not fit.

The allow-list rule (docs/models.md): public scikit-learn estimators skops trusts, XGBoost and
LightGBM through their scikit-learn interfaces, numpy and Python data; anything else only when
the spec lists it under `trusted_types:`, recorded in the manifest.
"""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_release.artifacts import read_manifest, writer
from ml_release.artifacts.manifest import ArtifactInputError, UnsafeArtifactError
from ml_release.artifacts.skops_io import load_model
from ml_release.artifacts.writer import write_artifact
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.errors import DataInputError
from ml_release.scoring import model_input
from tests import own_models
from tests.own_types import ShareClassifier

RAW = own_models.RAW


@pytest.fixture(scope="module")
def demo():
    return generate(seed=5, n_training=1500, n_evaluation=300, n_serving=10)


@pytest.fixture(autouse=True)
def no_git(monkeypatch):
    monkeypatch.setattr(writer, "current_code_version", lambda: None)


def write(model, root, **kw):
    return write_artifact(model, root, name="own", features=REQUIRED_COLUMNS, **kw)


@pytest.mark.parametrize("library", ["native_categorical", "xgboost", "lightgbm"])
def test_own_classifiers_publish_and_load_with_identical_answers(tmp_path, demo, library):
    if library == "native_categorical":
        model = own_models.native_categorical(demo.training)
    else:
        model = own_models.boosted(demo.training, library)
    folder = write(model, tmp_path, task="binary_classification", version="v1")
    manifest = read_manifest(folder)
    assert manifest.spec_trusted_types == []  # built in: nothing needed the spec's list
    assert manifest.output_schema.classes == [0, 1]
    assert [f.name for f in manifest.features] == RAW  # fitted on the raw columns, in order
    loaded = load_model(folder, root=tmp_path, feature_code="ml_release.demo.features")
    rows = demo.evaluation[RAW]
    assert np.array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    again = write(model, tmp_path / "again", task="binary_classification", version="v1")
    assert read_manifest(again).sha256 == manifest.sha256  # reproducible bytes


def test_own_regressor_publishes_with_a_prediction_output(tmp_path, demo):
    model = own_models.native_categorical(demo.training, regression=True)
    declared = {k: v for k, v in REQUIRED_COLUMNS.items() if k != "annual_income"}
    folder = write_artifact(model, tmp_path, name="own", features=declared, task="regression")
    schema = read_manifest(folder).output_schema
    assert (schema.prediction_column, schema.classes, schema.kind) == (
        "prediction",
        [],
        "regression",
    )
    loaded = load_model(folder, root=tmp_path)
    rows = demo.evaluation[list(declared)]
    assert np.array_equal(loaded.predict(rows), model.predict(rows))


def test_a_team_type_loads_only_when_the_spec_lists_it(tmp_path, demo):
    model = ShareClassifier().fit(demo.training[["age"]], demo.training["defaulted"])
    features = {"age": "numeric"}
    with pytest.raises(ArtifactInputError, match=r"tests\.own_types\.ShareClassifier"):
        write_artifact(model, tmp_path, name="own", features=features)
    trusted = ["tests.own_types.ShareClassifier"]
    folder = write_artifact(model, tmp_path, name="own", features=features, trusted_types=trusted)
    assert read_manifest(folder).spec_trusted_types == trusted
    with pytest.raises(UnsafeArtifactError, match="trusted_types"):
        load_model(folder, root=tmp_path)  # a spec without the listing cannot load it
    loaded = load_model(folder, root=tmp_path, trusted=trusted)
    assert loaded.predict_proba(demo.evaluation[["age"]]).shape == (300, 2)


def test_a_function_is_refused_unless_listed(tmp_path, demo):
    model = make_pipeline(FunctionTransformer(np.log1p), Ridge())
    model.fit(demo.training[["age"]], demo.training["annual_income"])
    with pytest.raises(ArtifactInputError, match=r"numpy\.log1p"):
        write_artifact(model, tmp_path, name="own", features={"age": "numeric"})
    folder = write_artifact(
        model, tmp_path, name="own", features={"age": "numeric"}, trusted_types=["numpy.log1p"]
    )
    assert read_manifest(folder).spec_trusted_types == ["numpy.log1p"]


@pytest.mark.parametrize(
    ("task", "model", "expected", "seen"),
    [
        ("binary_classification", "regressor", "expects a classifier", "is a regressor"),
        ("multiclass_classification", "regressor", "expects a classifier", "is a regressor"),
        ("regression", "classifier", "expects a regressor", "is a classifier"),
    ],
)
def test_a_model_of_another_task_is_refused_naming_both(
    tmp_path, demo, task, model, expected, seen
):
    fitted = (
        own_models.native_categorical(demo.training, regression=True)
        if model == "regressor"
        else own_models.native_categorical(demo.training)
    )
    features = {k: v for k, v in REQUIRED_COLUMNS.items() if k in fitted.feature_names_in_}
    with pytest.raises(ArtifactInputError) as refused:
        write_artifact(fitted, tmp_path, name="own", features=features, task=task)
    assert expected in str(refused.value) and seen in str(refused.value)
    assert not any(tmp_path.iterdir())


def test_a_binary_spec_refuses_three_classes(tmp_path, demo):
    labels = np.asarray(demo.training["channel"].astype(str))
    model = own_models.native_categorical(demo.training).fit(demo.training[RAW], labels)
    with pytest.raises(ArtifactInputError, match="exactly 2 classes"):
        write(model, tmp_path, task="binary_classification")


def test_a_model_fitted_on_an_undeclared_column_is_named(tmp_path, demo):
    training = demo.training.assign(secret_score=np.arange(len(demo.training)))
    model = make_pipeline(Ridge()).fit(training[["age", "secret_score"]], training["annual_income"])
    with pytest.raises(ArtifactInputError, match="'secret_score'"):
        write(model, tmp_path, task="regression")
    with pytest.raises(DataInputError, match="'secret_score'"):
        model_input(model, demo.evaluation, _spec(), tmp_path)


def _spec():
    from ml_release.spec import parse_spec
    from tests.conftest import PROJECT, spec_dict

    return parse_spec(spec_dict(), PROJECT / "release.yaml")
