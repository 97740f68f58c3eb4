"""Refusal at the door: nothing unsafe reaches incoming/, the store or the registry."""

import os
import pickle
import shutil

import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_release.artifacts import read_manifest
from ml_release.candidates import import_candidate
from ml_release.errors import ConflictError, IntegrityError
from ml_release.home import artifacts_dir, incoming_dir, quarantine_dir
from ml_release.intake import WrongModelError
from ml_release.publish import publish_path
from ml_release.registry import REGISTRY_URL_ENV, open_registry
from tests.conftest import spec_dict, write_spec
from tests.test_artifacts import Trap, forge, write


@pytest.fixture(scope="module")
def model():
    from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
    from ml_release.demo.generate import generate
    from ml_release.model import build_pipeline

    data = generate(seed=4, n_training=1500, n_evaluation=10, n_serving=10).training
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {}
    )
    return pipeline.fit(data[list(REQUIRED_COLUMNS)], data["defaulted"])


@pytest.fixture()
def spec(home, tmp_path):
    from ml_release.spec import load_spec

    return load_spec(write_spec(tmp_path, spec_dict()))


@pytest.fixture(params=["duckdb", "postgres"])
def registry(request, home, monkeypatch):
    """The configured registry: the home's file, then a PostgreSQL database named by the URL."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_schema("intake")
        monkeypatch.setenv(REGISTRY_URL_ENV, url)
    return open_registry()


def _artifact(tmp_path, model, version="v1", name="credit_default"):
    return write(model, tmp_path / "published", name=name, version=version)


def _disguised_pickle(tmp_path, model, marker):
    return forge(_artifact(tmp_path, model), pickle.dumps(Trap(marker)))


def _foreign_types(tmp_path, model):
    foreign = make_pipeline(FunctionTransformer(func=os.system), model)
    return forge(_artifact(tmp_path, model), sio.dumps(foreign))


def _nothing_admitted(registry, spec):
    assert registry.versions(spec.model.name) == []
    assert not artifacts_dir().exists() or not any(artifacts_dir().rglob("manifest.json"))
    assert not incoming_dir().exists() or not any(incoming_dir().iterdir())


def test_a_sound_artifact_is_published_into_incoming(tmp_path, model, spec, registry):
    folder = publish_path(_artifact(tmp_path, model), spec, registry, quarantine_dir())
    assert folder.parent == incoming_dir() and read_manifest(folder).version == "v1"
    assert registry.events(spec.model.name) == []  # registered only when gated


@pytest.mark.parametrize("make", ["pickle", "foreign"])
def test_register_refuses_unsafe_content_quarantines_and_records(
    tmp_path, model, spec, registry, make
):
    marker = tmp_path / "pwned"
    folder = (
        _disguised_pickle(tmp_path, model, marker)
        if make == "pickle"
        else _foreign_types(tmp_path, model)
    )
    digest = read_manifest(folder).sha256
    with pytest.raises(IntegrityError) as caught:
        publish_path(folder, spec, registry, quarantine_dir())
    assert caught.value.exit_code == 4
    assert not marker.exists()  # nothing was ever unpickled
    _nothing_admitted(registry, spec)
    [refused] = registry.events(spec.model.name, ("refused",))
    assert refused.digest == digest and refused.lineage["source"] == "register"
    if make == "foreign":
        assert "posix.system" in refused.lineage["refused_types"]
    [kept] = quarantine_dir().iterdir()
    assert "refused (register)" in (kept / "REASON.txt").read_text()
    assert folder.exists()  # the user's own folder is copied to quarantine, not taken


def test_a_pickle_skops_file_is_refused_at_register(tmp_path, spec, registry):
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(IntegrityError, match="never loads pickles"):
        publish_path(path, spec, registry, quarantine_dir())
    assert registry.events(spec.model.name, ("refused",))
    _nothing_admitted(registry, spec)


def test_another_models_artifact_is_refused(tmp_path, model, spec, registry):
    folder = _artifact(tmp_path, model, name="fraud_score")
    with pytest.raises(WrongModelError, match="names model 'fraud_score'"):
        publish_path(folder, spec, registry, quarantine_dir())
    _nothing_admitted(registry, spec)
    assert not open_registry().versions("fraud_score")


def test_a_reused_version_with_another_digest_is_a_conflict(tmp_path, model, spec, registry):
    first = _artifact(tmp_path, model)
    import_candidate(first, spec, artifacts_dir(), registry, quarantine_dir(), way_in="test")
    model.set_params(estimator__C=0.3)
    other = write(model, tmp_path / "other", name="credit_default", version="v1")
    model.set_params(estimator__C=1.0)
    with pytest.raises(ConflictError) as caught:
        publish_path(other, spec, registry, quarantine_dir())
    assert caught.value.exit_code == 3
    assert registry.events(spec.model.name, ("refused",))[0].lineage["error"] == "ConflictError"


def test_run_candidate_refuses_before_the_store(tmp_path, model, spec, registry):
    folder = _disguised_pickle(tmp_path, model, tmp_path / "pwned")
    with pytest.raises(IntegrityError):
        import_candidate(
            folder, spec, artifacts_dir(), registry, quarantine_dir(), way_in="run --candidate"
        )
    _nothing_admitted(registry, spec)
    assert registry.events(spec.model.name, ("refused",))[0].lineage["source"] == (
        "run --candidate"
    )


def test_importing_a_registered_digest_under_a_new_label_stores_nothing(
    tmp_path, model, spec, registry
):
    first = _artifact(tmp_path, model)
    import_candidate(first, spec, artifacts_dir(), registry, quarantine_dir(), way_in="test")
    relabelled = tmp_path / "relabelled"
    shutil.copytree(first, relabelled)
    manifest = read_manifest(relabelled).model_copy(update={"version": "v1-again"})
    (relabelled / "manifest.json").write_text(manifest.model_dump_json())
    again = import_candidate(
        relabelled, spec, artifacts_dir(), registry, quarantine_dir(), way_in="test"
    )
    assert again.version == "v1" and not again.newly_registered
    assert sorted(p.name for p in (artifacts_dir() / "credit_default").iterdir()) == ["v1"]
    assert registry.version("credit_default", "v1").path == "credit_default/v1"  # relative
