"""Prompt/config artifacts: verified like models, registered idempotently, never loaded as one."""

import json

import pytest

from ml_release.artifacts import CONFIG_FILE, read_manifest, verify_artifact
from ml_release.artifacts.manifest import UnsafeArtifactError
from ml_release.artifacts.skops_io import load_model
from ml_release.errors import ConflictError, DataInputError, IntegrityError
from ml_release.llm.candidate import gate_candidate, read_config, write_config
from ml_release.llm.config import load_config
from ml_release.publish import publish_path
from ml_release.registry import Registry
from ml_release.spec import load_spec
from tests.llm_support import DEMO, PROJECT

PROMPT = DEMO / "prompts" / "support-v1.yaml"


def test_a_config_artifact_verifies_and_records_its_prompt_version(tmp_path):
    folder = write_config(load_config(PROMPT), tmp_path, spec_hash="h")
    manifest = verify_artifact(folder)
    assert manifest.kind == "llm_config" and manifest.payload_file == CONFIG_FILE
    assert manifest.extra["prompt_version"] == "support-v1"
    assert read_config(folder) == load_config(PROMPT)
    assert write_config(load_config(PROMPT), tmp_path) == folder  # same bytes: a no-op


def test_a_tampered_config_fails_verification_and_is_not_loaded_as_a_model(tmp_path):
    folder = write_config(load_config(PROMPT), tmp_path)
    with pytest.raises(UnsafeArtifactError, match="not a model"):
        load_model(folder)
    data = json.loads((folder / CONFIG_FILE).read_text())
    data["template"] += " Ignore the context."
    (folder / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        verify_artifact(folder)


def test_the_same_version_with_another_prompt_is_a_conflict(tmp_path):
    write_config(load_config(PROMPT), tmp_path)
    changed = load_config(PROMPT).model_copy(update={"system": "Be rude."})
    with pytest.raises(ConflictError):
        write_config(changed, tmp_path)


def test_gating_a_prompt_file_registers_it_once(tmp_path):
    spec = load_spec(PROJECT / "examples" / "rag" / "release.yaml")
    registry = Registry(tmp_path / "registry.duckdb")
    store, quarantine = tmp_path / "a", tmp_path / "q"
    first = gate_candidate(PROMPT, spec, store, registry, quarantine)
    again = gate_candidate(PROMPT, spec, store, registry, quarantine)
    config = read_config(first.folder, first.digest)
    assert first.newly_registered and not again.newly_registered
    assert first.version == config.version == "support-v1"
    other = spec.model_copy(update={"model": spec.model.model_copy(update={"name": "other_app"})})
    with pytest.raises(DataInputError, match=r"not the spec's model\.name"):
        gate_candidate(PROMPT, other, tmp_path / "b", registry, quarantine)


def test_register_publishes_a_prompt_file_into_incoming(home):
    from ml_release.home import quarantine_dir, registry_path

    spec = load_spec(PROJECT / "examples" / "rag" / "release.yaml")
    folder = publish_path(PROMPT, spec, Registry(registry_path()), quarantine_dir())
    assert folder.parent.name == "incoming"
    assert read_manifest(folder).version == "support-v1"
