"""Many models in one code location: a folder of release specs.

Each model's assets sit under its own key prefix, its jobs and sensors are named
`<model>__<name>`, its warehouse is a file of its own; one artifact sensor routes every new
artifact to its model by the name in its manifest; commands take `--model`.
"""

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ml_release import keys
from ml_release.artifacts import writer
from ml_release.cli import main
from ml_release.definitions import build_location
from ml_release.errors import SpecError
from ml_release.home import incoming_dir, quarantine_dir, registry_path, warehouse_path
from ml_release.jobs import ensure_instance
from ml_release.registry import PRODUCTION, Registry
from ml_release.spec_set import load_specs
from tests.conftest import PROJECT, demo_artifact, spec_dict

MODELS = ("alpha", "beta", "gamma")


def write_specs(folder, models=MODELS) -> None:
    """One spec per model, on the same demo data: the tests' release.yaml, renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in models:
        data = spec_dict()
        data["model"]["name"] = name
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def specs(tmp_path):
    write_specs(tmp_path / "specs")
    return tmp_path / "specs"


@pytest.fixture(autouse=True)
def no_git(monkeypatch):
    monkeypatch.setattr(writer, "current_code_version", lambda: None)


def artifact(demo, parent, model: str, version: str, c: float = 1.0):
    return demo_artifact(demo, parent, name=model, version=version, c=c)


def test_a_folder_of_specs_is_one_location_with_a_prefix_per_model(specs):
    defs = build_location(load_specs(specs))

    graph = defs.resolve_asset_graph()
    for model in MODELS:
        assert dg.AssetKey([model, keys.EVALUATION_REPORT]) in graph.get_all_asset_keys()
        job = defs.resolve_job_def(f"{model}__release")
        assert job.tags[keys.MODEL_TAG] == model
        selected = {key.path[0] for key in job.asset_layer.selected_asset_keys}
        assert selected == {model}  # a model's release job gates that model only
        assert f"{model}__rollback" in {j.name for j in defs.resolve_all_job_defs()}
    assert dg.AssetKey([keys.EVALUATION_REPORT]) not in graph.get_all_asset_keys()
    sensors = {s.name for s in defs.sensors}
    assert keys.ARTIFACT_SENSOR in sensors and "beta__blocked_release_sensor" in sensors
    dg.Definitions.validate_loadable(defs)


def test_a_folder_with_one_spec_keeps_the_plain_names(tmp_path):
    write_specs(tmp_path / "one", models=("alpha",))
    defs = build_location(load_specs(tmp_path / "one"))
    assert defs.resolve_job_def(keys.RELEASE_JOB).tags[keys.MODEL_TAG] == "alpha"


def test_spec_folder_mistakes_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"holds no \*\.yaml file"):
        load_specs(tmp_path / "empty")
    write_specs(tmp_path / "twice", models=("alpha", "beta"))
    (tmp_path / "twice" / "copy.yaml").write_text((tmp_path / "twice" / "alpha.yaml").read_text())
    with pytest.raises(SpecError, match="both gate model 'alpha'"):
        load_specs(tmp_path / "twice")
    specs = load_specs(tmp_path / "twice" / "alpha.yaml")
    assert specs.pick(None).model.name == "alpha" and specs.pick(None).scope == ""


def test_commands_ask_for_the_model_where_several_specs_are_loaded(home, specs, capsys):
    assert main(["--spec", str(specs), "run"]) == 2
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "holds 3 release specs (alpha, beta, gamma): name one with --model" in out
    assert main(["--spec", str(specs), "--model", "delta", "validate"]) == 2
    assert "no release spec for model 'delta'" in capsys.readouterr().out


@pytest.mark.slow
def test_releases_of_two_models_each_use_their_own_names_and_warehouse(home, specs, demo, capsys):
    from ml_release.demo.generate import write_demo_data

    write_demo_data(home / "demo", demo)
    assert main(["--spec", str(specs), "--model", "alpha", "run"]) == 0
    assert main(["--spec", str(specs), "run", "--model", "beta"]) == 0  # after the command too
    assert capsys.readouterr().out.count("PROMOTED") == 2

    registry = Registry(registry_path())
    assert registry.alias("alpha", PRODUCTION) and registry.alias("beta", PRODUCTION)
    assert registry.alias("gamma", PRODUCTION) is None
    assert warehouse_path(model="alpha").is_file() and warehouse_path(model="beta").is_file()
    assert not warehouse_path().exists()
    instance = ensure_instance(home.parent / "dagster")
    for model in ("alpha", "beta"):
        found = instance.fetch_materializations(dg.AssetKey([model, keys.PRODUCTION_MODEL]), 5)
        assert found.records[0].asset_materialization.metadata["version"].value == (
            registry.alias(model, PRODUCTION)
        )
    jobs = {run.job_name for run in instance.get_runs()}
    assert jobs == {"alpha__release", "beta__release"}
    assert main(["--spec", str(specs), "--model", "alpha", "history"]) == 0


def test_one_sensor_routes_each_artifact_to_its_model(home, specs, demo):
    defs = build_location(load_specs(specs))
    inbox = incoming_dir()
    # Other C each: an artifact's digest is its payload's, and one digest is one run.
    artifact(demo, inbox, "alpha", "a1", c=1.0)
    artifact(demo, inbox, "gamma", "g1", c=0.5)
    artifact(demo, inbox, "delta", "d1", c=0.25)  # no spec of this location gates it
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={k: defs.resources[k] for k in ("model_registry", "artifact_inbox")},
    )
    result = defs.resolve_sensor_def(keys.ARTIFACT_SENSOR)(context)

    runs = {run.job_name: run for run in result.run_requests}
    assert set(runs) == {"alpha__release", "gamma__release"}
    for model, run in (("alpha", runs["alpha__release"]), ("gamma", runs["gamma__release"])):
        config = run.run_config["ops"][f"{model}__candidate_model"]["config"]
        manifest = json.loads((Path(config["artifact"]) / "manifest.json").read_text())
        assert manifest["name"] == model
        dg.validate_run_config(defs.resolve_job_def(run.job_name), run.run_config)
    added = {r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests}
    assert added == {
        keys.candidates_partitions("alpha"): [runs["alpha__release"].partition_key],
        keys.candidates_partitions("gamma"): [runs["gamma__release"].partition_key],
    }
    refused = Registry(registry_path()).events("delta", ("refused",))
    assert len(refused) == 1 and "no release spec of this location gates" in refused[0].reason
    assert [p.name for p in quarantine_dir().iterdir()] and not (inbox / "d1").exists()


def test_one_model_file_published_for_two_models_is_gated_for_each(home, specs, demo):
    """The same payload (one digest) under two model names: each model's release judges it."""
    defs = build_location(load_specs(specs))
    inbox = incoming_dir()
    artifact(demo, inbox, "alpha", "a1")
    artifact(demo, inbox, "gamma", "g1")  # the same fitted model, so the same digest
    sensor = defs.resolve_sensor_def(keys.ARTIFACT_SENSOR)
    resources = {k: defs.resources[k] for k in ("model_registry", "artifact_inbox")}
    instance = dg.DagsterInstance.ephemeral()
    first = sensor(dg.build_sensor_context(instance=instance, resources=resources))

    runs = {run.job_name: run for run in first.run_requests}
    assert set(runs) == {"alpha__release", "gamma__release"}
    assert runs["alpha__release"].partition_key == runs["gamma__release"].partition_key
    assert len({run.run_key for run in runs.values()}) == 2  # Dagster keeps one run per key
    again = sensor(
        dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
    )
    assert again.run_requests == []  # and each is requested once


@pytest.mark.parametrize("config", ["docs/examples/dagster-postgres.yaml", "embedded"])
def test_the_run_queue_holds_one_release_per_model_at_a_time(tmp_path, config):
    """The daemon's run queue reads this limit: different models run at once, one model's
    releases one after another."""
    import shutil

    if config == "embedded":
        instance = ensure_instance(tmp_path)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    else:
        shutil.copy(PROJECT / config, tmp_path / "dagster.yaml")
        settings = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
        limits = settings["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {
        "key": keys.MODEL_TAG,
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in limits
