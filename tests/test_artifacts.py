"""Model artifacts: atomic writes, digests, and a loader that refuses pickles and foreign types."""

import errno
import hashlib
import json
import os
import pickle
import pickletools
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import skops
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_release.artifacts import (
    MANIFEST_FILE,
    MODEL_FILE,
    ArtifactInputError,
    UnsafeArtifactError,
    UnsafePathError,
    file_sha256,
    read_manifest,
    safe_path,
    verify_artifact,
    writer,
)
from ml_release.artifacts.allowlist import BUILT_IN
from ml_release.artifacts.skops_io import load_model
from ml_release.artifacts.writer import publish_candidate, write_artifact
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_INTEGRITY,
    ConflictError,
    IntegrityError,
)
from ml_release.model import ESTIMATORS, FeatureTransformer, build_pipeline
from tests.own_types import ShareClassifier

CODE = "ml_release.demo.features"
COMMIT = "c0ffee" + "0" * 34
RAW = list(REQUIRED_COLUMNS)
TRUSTED = {
    "logistic_regression": ["ml_release.model.FeatureTransformer", "numpy.dtype"],
    "hist_gradient_boosting": [
        "ml_release.model.FeatureTransformer",
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    ],
    "random_forest": [
        "ml_release.model.FeatureTransformer",
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
    ],
}
PARAMS = {
    "logistic_regression": {},
    "hist_gradient_boosting": {"max_iter": 30, "random_state": 0},
    "random_forest": {"n_estimators": 10, "max_depth": 6, "random_state": 0},
}


@pytest.fixture(scope="module")
def demo():
    return generate(seed=3, n_training=2000, n_evaluation=10, n_serving=10)


def train(demo, estimator: str):
    pipeline = build_pipeline(CODE, NUMERIC, CATEGORICAL, estimator, PARAMS[estimator])
    return pipeline.fit(demo.training[RAW], demo.training["defaulted"])


@pytest.fixture(scope="module")
def models(demo):
    return {name: train(demo, name) for name in ESTIMATORS}


@pytest.fixture(autouse=True)
def fixed_commit(monkeypatch):
    # Keeps tests from depending on (or running) git in whatever folder they run in.
    monkeypatch.setattr(writer, "current_code_version", lambda: COMMIT)


def write(model, root: Path, **kw) -> Path:
    kw.setdefault("name", "credit")
    return write_artifact(model, root, features=REQUIRED_COLUMNS, **kw)


def forge(folder: Path, data: bytes) -> Path:
    """Replace the model file with `data` and re-sign the manifest, as an attacker could."""
    (folder / MODEL_FILE).unlink()
    (folder / MODEL_FILE).write_bytes(data)
    manifest = read_manifest(folder).model_copy(
        update={"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    )
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json())
    verify_artifact(folder)
    return folder


class Trap:
    """Unpickling this creates `marker`: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_round_trip_gives_identical_probabilities(tmp_path, demo, models, estimator):
    model = models[estimator]
    folder = write(model, tmp_path, version="v1")
    loaded = load_model(folder, root=tmp_path, feature_code=CODE)
    raw = demo.evaluation[RAW]
    np.testing.assert_array_equal(loaded.predict_proba(raw), model.predict_proba(raw))
    # Raw rows in any column order (serving payloads) give the same answer.
    np.testing.assert_array_equal(loaded.predict_proba(raw[RAW[::-1]]), model.predict_proba(raw))
    assert read_manifest(folder).trusted_types == TRUSTED[estimator]


def train_frame_fed(demo, estimator: str):
    """`build_pipeline`'s model as it was before `as_array`, fitted: the feature step hands a
    frame on and the ColumnTransformer selects its columns by name."""
    pipeline = build_pipeline(CODE, NUMERIC, CATEGORICAL, estimator, PARAMS[estimator])
    pipeline.steps[0][1].set_params(as_array=False)
    preprocess = pipeline.steps[1][1]
    by_name = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    preprocess.set_params(transformers=[(n, t, by_name[n]) for n, t, _ in preprocess.transformers])
    return pipeline.fit(demo.training[RAW], demo.training["defaulted"])


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_an_array_fed_pipeline_answers_as_the_frame_fed_one(demo, models, estimator):
    model = models[estimator]
    assert model.steps[0][1].as_array  # what build_pipeline builds today
    frame_fed = train_frame_fed(demo, estimator)
    raw = demo.evaluation[RAW]
    np.testing.assert_array_equal(model.predict_proba(raw), frame_fed.predict_proba(raw))
    for i in range(3):  # one serving request at a time, as the model server calls it
        row = raw.iloc[[i]]
        np.testing.assert_array_equal(model.predict_proba(row), frame_fed.predict_proba(row))


def test_an_artifact_saved_before_as_array_still_hands_its_steps_a_frame(tmp_path, demo, models):
    old = train_frame_fed(demo, "logistic_regression")
    del old.steps[0][1].as_array  # the saved state of a FeatureTransformer from before
    folder = write(old, tmp_path, version="v0")
    loaded = load_model(folder, root=tmp_path, feature_code=CODE)
    assert loaded.steps[0][1].as_array is False
    raw = demo.evaluation[RAW]
    np.testing.assert_array_equal(
        loaded.predict_proba(raw), models["logistic_regression"].predict_proba(raw)
    )


def test_manifest_records_origin_and_what_loading_needs(tmp_path, models):
    folder = write(
        models["random_forest"],
        tmp_path,
        training_data_fingerprint="fp-123",
        spec_hash="spec-456",
        feature_code_version="abc123def456",
        extra={"prompt_version": "7"},
    )
    manifest = read_manifest(folder)
    data = (folder / MODEL_FILE).read_bytes()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", manifest.version)
    assert folder.name == f"credit-{manifest.version}"
    assert manifest.sha256 == hashlib.sha256(data).hexdigest() == file_sha256(folder / MODEL_FILE)
    assert manifest.version.endswith(manifest.sha256[:8])
    assert manifest.size_bytes == len(data)
    assert datetime.fromisoformat(manifest.created_at).utcoffset().total_seconds() == 0
    versions = manifest.library_versions
    assert (versions.scikit_learn, versions.skops, versions.numpy) == (
        sklearn.__version__,
        skops.__version__,
        np.__version__,
    )
    assert versions.python == ".".join(map(str, sys.version_info[:3]))
    assert {f.name: f.dtype for f in manifest.features} == REQUIRED_COLUMNS
    assert manifest.output_schema.classes == [0, 1]
    assert manifest.output_schema.probability_columns == ["proba_0", "proba_1"]
    assert (manifest.training_data_fingerprint, manifest.spec_hash) == ("fp-123", "spec-456")
    assert manifest.feature_code_version == "abc123def456"
    assert manifest.code_version == COMMIT
    assert manifest.extra == {"prompt_version": "7"}
    assert set(manifest.trusted_types) <= BUILT_IN
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE, MODEL_FILE]


def test_features_may_be_given_as_name_dtype_records(tmp_path, models):
    records = [{"name": c, "dtype": k} for c, k in REQUIRED_COLUMNS.items()]
    folder = write_artifact(models["logistic_regression"], tmp_path, name="m", features=records)
    assert [f.name for f in read_manifest(folder).features] == RAW


def test_code_version_is_none_without_git(monkeypatch, tmp_path):
    monkeypatch.undo()  # the real function, with no git on PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    assert writer.current_code_version() is None


def test_writing_the_same_model_twice_is_idempotent(tmp_path, demo, models):
    first = write(models["hist_gradient_boosting"], tmp_path, version="v1")
    manifest = read_manifest(first)
    again = write(models["hist_gradient_boosting"], tmp_path, version="v1")
    retrained = write(train(demo, "hist_gradient_boosting"), tmp_path, version="v1")
    assert again == retrained == first
    assert read_manifest(first) == manifest
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_digest_is_reproducible_across_processes(tmp_path, models):
    digest = read_manifest(write(models["logistic_regression"], tmp_path, version="v1")).sha256
    script = (
        "import hashlib, sys\n"
        "from ml_release.artifacts.skops_io import skops_bytes\n"
        "from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS\n"
        "from ml_release.demo.generate import generate\n"
        "from ml_release.model import build_pipeline\n"
        "d = generate(seed=3, n_training=2000, n_evaluation=10, n_serving=10)\n"
        f"m = build_pipeline({CODE!r}, NUMERIC, CATEGORICAL, 'logistic_regression', {{}})\n"
        "m.fit(d.training[list(REQUIRED_COLUMNS)], d.training['defaulted'])\n"
        "print(hashlib.sha256(skops_bytes(m)).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == digest


def test_same_version_with_another_model_is_refused(tmp_path, models):
    first = write(models["logistic_regression"], tmp_path, version="v1")
    digest = read_manifest(first).sha256
    with pytest.raises(ConflictError) as refused:
        write(models["random_forest"], tmp_path, version="v1")
    assert refused.value.exit_code == EXIT_CONFLICT
    assert digest in str(refused.value) and "another version" in str(refused.value)
    assert read_manifest(first).sha256 == digest == file_sha256(first / MODEL_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_the_trap_payload_is_live(tmp_path):
    # Positive control for the test below, without unpickling anything: the bytes carry a
    # REDUCE of Path.touch (what an unpickler calls), and that call creates the marker. So
    # "the marker was never created" means the loader refused the bytes, not that the
    # payload was inert.
    proof = tmp_path / "proof"
    opcodes = [op.name for op, _arg, _pos in pickletools.genops(pickle.dumps(Trap(proof)))]
    assert "REDUCE" in opcodes and b"touch" in pickle.dumps(Trap(proof))
    call, args = Trap(proof).__reduce__()
    call(*args)
    assert proof.exists()


@pytest.mark.reliability("input")
@pytest.mark.parametrize("kind", ["pickle", "joblib", "joblib-zlib"])
def test_pickle_disguised_as_skops_is_refused_and_never_run(tmp_path, models, kind):
    store = tmp_path / "store"
    folder = write(models["logistic_regression"], store, version="v1")
    marker = tmp_path / "pwned"
    if kind == "pickle":
        payload = pickle.dumps(Trap(marker))
    else:
        joblib.dump(Trap(marker), tmp_path / "trap.joblib", compress=kind == "joblib-zlib")
        payload = (tmp_path / "trap.joblib").read_bytes()
    forge(folder, payload)
    with pytest.raises(UnsafeArtifactError) as refused:
        load_model(folder, root=store)
    assert refused.value.exit_code == EXIT_INTEGRITY
    assert "never loads pickles" in str(refused.value) and str(folder) in str(refused.value)
    assert not marker.exists()


def test_file_that_is_neither_zip_nor_pickle_is_refused(tmp_path, models):
    folder = forge(write(models["logistic_regression"], tmp_path, version="v1"), b"")
    with pytest.raises(UnsafeArtifactError, match="is not a skops file"):
        load_model(folder)


@pytest.mark.parametrize(
    ("foreign", "offending"),
    [
        (
            lambda m: make_pipeline(FunctionTransformer(func=os.system), m),
            ["posix.system"],
        ),
        (
            lambda m: ShareClassifier().fit([[0], [1]], [0, 1]),
            ["tests.own_types.ShareClassifier"],
        ),
    ],
    ids=["function-transformer-os-system", "a-team-class-the-spec-does-not-list"],
)
@pytest.mark.reliability("input")
def test_skops_file_with_types_outside_allowed_is_refused(tmp_path, models, foreign, offending):
    model = foreign(models["logistic_regression"])
    with pytest.raises(ArtifactInputError) as at_write:
        write(model, tmp_path / "store", version="v2")
    assert at_write.value.exit_code == EXIT_BAD_INPUT
    assert all(name in str(at_write.value) for name in offending)
    assert not any((tmp_path / "store").iterdir())
    folder = forge(write(models["logistic_regression"], tmp_path, version="v1"), sio.dumps(model))
    with pytest.raises(UnsafeArtifactError) as at_load:
        load_model(folder, root=tmp_path)
    assert at_load.value.exit_code == EXIT_INTEGRITY
    assert all(name in str(at_load.value) for name in offending)


def test_digest_mismatch_is_refused_before_anything_is_parsed(tmp_path, models, monkeypatch):
    folder = write(models["logistic_regression"], tmp_path, version="v1")
    expected = read_manifest(folder).sha256
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / MODEL_FILE).write_bytes(bytes(data))
    for parser in ("loads", "load", "get_untrusted_types"):
        monkeypatch.setattr(sio, parser, lambda *a, **k: pytest.fail("parsed a bad file"))
    with pytest.raises(IntegrityError) as refused:
        load_model(folder, root=tmp_path)
    message = str(refused.value)
    assert refused.value.exit_code == EXIT_INTEGRITY
    assert str(folder) in message and expected in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_missing_or_invalid_manifest_is_an_integrity_error(tmp_path, models):
    folder = write(models["logistic_regression"], tmp_path, version="v1")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "pickle": True}))
    with pytest.raises(IntegrityError, match="not a valid manifest"):
        verify_artifact(folder)
    (folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(IntegrityError, match="not a valid manifest"):
        verify_artifact(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(IntegrityError, match=re.escape("has no manifest.json")):
        load_model(folder)


@pytest.mark.reliability("input")
def test_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "store"
    (root / "credit" / "v1").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)
    assert safe_path(root, "credit", "v1") == (root / "credit" / "v1").resolve()
    for parts in [("..", "x"), ("credit", "..", "..", "x"), ("/etc",), ("escape", "x")]:
        with pytest.raises(UnsafePathError) as refused:
            safe_path(root, *parts)
        assert refused.value.exit_code == EXIT_BAD_INPUT
    for folder in [Path("../outside"), tmp_path / "outside", Path("escape")]:
        with pytest.raises(UnsafePathError):
            load_model(folder, root=root)


@pytest.mark.reliability("input")
def test_model_file_that_is_a_symlink_is_refused(tmp_path, models):
    folder = write(models["logistic_regression"], tmp_path / "store", version="v1")
    elsewhere = tmp_path / "elsewhere.skops"
    (folder / MODEL_FILE).rename(elsewhere)
    (folder / MODEL_FILE).symlink_to(elsewhere)  # same bytes: the digest alone would pass
    with pytest.raises(IntegrityError, match="symlink"):
        load_model(folder, root=tmp_path / "store")


@pytest.mark.reliability("input")
def test_model_built_on_other_feature_code_is_refused_when_code_is_given(tmp_path, models):
    folder = write(models["logistic_regression"], tmp_path, version="v1")
    with pytest.raises(UnsafeArtifactError, match=re.escape("expected 'other.features'")):
        load_model(folder, root=tmp_path, feature_code="other.features")


def test_feature_code_must_be_a_module_path(demo):
    with pytest.raises(ValueError, match="not a dotted module path"):
        FeatureTransformer("os; rm -rf /", NUMERIC).transform(demo.evaluation[RAW])


@pytest.mark.reliability("input")
@pytest.mark.parametrize(
    ("field", "value"),
    [("version", "../x"), ("version", "a/b"), ("version", "v..1"), ("name", "my model")],
)
def test_unsafe_names_and_versions_are_refused(tmp_path, models, field, value):
    with pytest.raises(ArtifactInputError) as refused:
        write(models["logistic_regression"], tmp_path, **{field: value})
    assert refused.value.exit_code == EXIT_BAD_INPUT and repr(value) in str(refused.value)
    assert not any(tmp_path.iterdir())


def test_unfitted_model_is_refused(tmp_path):
    model = build_pipeline(CODE, NUMERIC, CATEGORICAL, "logistic_regression", {})
    with pytest.raises(ArtifactInputError, match="not fitted"):
        write(model, tmp_path)


def test_unknown_estimator_lists_the_known_ones():
    with pytest.raises(ValueError, match="hist_gradient_boosting, logistic_regression"):
        build_pipeline(CODE, NUMERIC, CATEGORICAL, "svm", {})


def test_interrupted_serialization_leaves_nothing_visible(tmp_path, models, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio, "dumps", fail)
    with pytest.raises(OSError, match="No space left"):
        write(models["logistic_regression"], tmp_path, version="v1")
    assert list(tmp_path.iterdir()) == []


def test_failure_at_the_rename_leaves_nothing_visible(tmp_path, models, monkeypatch):
    def fail(*args):
        raise OSError(errno.EIO, "EIO")

    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(OSError, match="EIO"):
        write(models["logistic_regression"], tmp_path, version="v1")
    assert list(tmp_path.iterdir()) == []


def test_temp_folders_of_dead_writers_are_cleaned_on_the_next_write(tmp_path, models):
    dead = tmp_path / ".tmp-999999999-0123"
    live = tmp_path / f".tmp-{os.getpid()}-4567"
    for leftover in (dead, live):
        leftover.mkdir()
        (leftover / MODEL_FILE).write_bytes(b"partial")
        os.utime(leftover, (0, 0))
    folder = write(models["logistic_regression"], tmp_path, version="v1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, live.name])


def test_publish_candidate_writes_into_incoming(tmp_path, models, monkeypatch):
    monkeypatch.setenv("ML_RELEASE_HOME", str(tmp_path / "home"))
    folder = publish_candidate(
        models["logistic_regression"], name="credit", features=REQUIRED_COLUMNS, version="v1"
    )
    assert folder == tmp_path / "home" / "incoming" / "credit-v1"
    assert verify_artifact(folder).version == "v1"
