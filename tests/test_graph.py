"""The Dagster graph: blocking gates stop what is downstream, warnings do not, errors fail."""

import os
import subprocess
import sys
from dataclasses import replace

import dagster as dg
import pytest

from ml_release import keys
from ml_release.definitions import build_definitions
from ml_release.demo import scenarios
from ml_release.jobs import ensure_instance
from ml_release.spec import load_spec
from tests.conftest import PROJECT, gate, spec_dict, write_spec


def _with_probe(spec):
    """The release graph plus an asset downstream of the evaluation features."""
    ran = []

    @dg.asset(deps=[keys.EVALUATION_FEATURES])
    def downstream_probe():
        ran.append(True)

    defs = build_definitions(spec)
    return (spec, dg.Definitions.merge(defs, dg.Definitions(assets=[downstream_probe]))), ran


def _run(spec_and_defs):
    spec, defs = spec_and_defs
    return gate(spec, defs)[1]


def _checks(result):
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_healthy_release_runs_everything(make_release):
    defs, ran = _with_probe(make_release())
    result = _run(defs)
    assert result.success
    assert ran == [True]
    evaluations = _checks(result)
    assert all(e.passed for e in evaluations.values())
    assert ("serving_features_recomputed", "training_serving_parity") in evaluations
    schema = evaluations[("evaluation_features", "feature_schema")]
    assert schema.metadata["verdict"].value == "pass"
    assert "spec_hash" in schema.metadata and "columns" in schema.metadata


def test_failing_must_pass_gate_stops_downstream(make_release, demo):
    broken = scenarios.null_flood(demo.evaluation, "annual_income", rate=0.3)
    defs, ran = _with_probe(make_release(replace(demo, evaluation=broken)))
    result = _run(defs)
    evaluation = _checks(result)[("evaluation_features", "null_rate_threshold")]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["failing_examples"].value.records
    assert ran == []  # the downstream asset never ran in this run
    assert not result.success


def test_the_release_stages_follow_one_another_except_for_coverage():
    """serving_report waits for the evaluation and shadow_report for the serving checks; the
    coverage runner's graph does not chain them, to judge every gate a mode targets."""
    spec = load_spec(PROJECT / "release.yaml")  # serving and shadow gates

    def key(name: str) -> dg.AssetKey:
        return dg.AssetKey(spec.key(name))

    def parents(defs, name: str) -> set:
        return defs.resolve_asset_graph().get(key(name)).parent_keys

    chained, unchained = build_definitions(spec), build_definitions(spec, chained=False)
    assert key(keys.EVALUATION_REPORT) in parents(chained, keys.SERVING_REPORT)
    assert key(keys.SERVING_REPORT) in parents(chained, keys.SHADOW_REPORT)
    assert key(keys.EVALUATION_REPORT) not in parents(unchained, keys.SERVING_REPORT)
    assert key(keys.SERVING_REPORT) not in parents(unchained, keys.SHADOW_REPORT)


def test_a_candidate_blocked_offline_is_neither_served_nor_replayed(make_release, demo):
    """A failed blocking gate before serving leaves serving_report and shadow_report undone."""
    broken = scenarios.null_flood(demo.evaluation, "annual_income", rate=0.3)
    spec = make_release(replace(demo, evaluation=broken), serving=True)
    assert {g.name for g in spec.gates} >= {"serving_memory", "shadow_error_rate"}
    result = _run((spec, build_definitions(spec)))
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys.CANDIDATE_MODEL in done
    assert not done & {keys.EVALUATION_REPORT, keys.SERVING_REPORT, keys.SHADOW_REPORT}, done


def test_must_pass_false_only_warns(make_release, demo):
    data = spec_dict()
    for entry in data["gates"]:
        if entry["name"] == "null_rate_threshold":
            entry["must_pass"] = False
    broken = scenarios.null_flood(demo.evaluation, "annual_income", rate=0.3)
    defs, ran = _with_probe(make_release(replace(demo, evaluation=broken), gates=data["gates"]))
    result = _run(defs)
    evaluation = _checks(result)[("evaluation_features", "null_rate_threshold")]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert ran == [True]
    assert result.success


def test_bad_input_fails_the_step_and_nothing_downstream_runs(make_release, home, demo):
    spec = make_release()
    (home / "demo" / "evaluation_holdout.parquet").write_bytes(b"")
    defs, ran = _with_probe(spec)
    result = _run(defs)
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == [keys.EVALUATION_HOLDOUT]
    assert "evaluation_holdout.parquet is empty (0 bytes)" in str(
        failures[0].step_failure_data.error
    )
    assert ran == []
    assert ("evaluation_features", "feature_schema") not in _checks(result)


def test_every_module_the_step_processes_preload_imports():
    """The fork server skips a preload module that does not import, silently: a Dagster
    upgrade that moves its storage modules would make every step process slower unnoticed."""
    import importlib

    from ml_release.definitions import STEP_PRELOAD

    for module in STEP_PRELOAD:
        importlib.import_module(module)


@pytest.mark.slow
def test_multiprocess_run_from_the_workspace_does_not_hit_the_duckdb_lock(home, tmp_path, demo):
    """A run launched like the UI launches it: default multiprocess executor, workspace.yaml."""
    import json

    from ml_release.candidates import prepare_candidate
    from ml_release.demo.generate import write_demo_data
    from ml_release.home import artifacts_dir, quarantine_dir
    from ml_release.jobs import add_candidate
    from ml_release.spec import load_spec

    write_demo_data(home / "demo", demo)
    spec_file = write_spec(tmp_path, spec_dict())
    spec = load_spec(spec_file)
    dagster_home = tmp_path / "instance"
    candidate = prepare_candidate(spec, None, artifacts_dir(), _registry(), quarantine_dir())
    add_candidate(ensure_instance(dagster_home), spec.model.name, candidate.digest)
    env = {**os.environ, "ML_RELEASE_SPEC": str(spec_file), "DAGSTER_HOME": str(dagster_home)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "execute",
            "-m",
            "ml_release.definitions",
            "-d",
            ".",
            "-j",
            keys.RELEASE_JOB,
            "--tags",
            json.dumps({keys.PARTITION_TAG: candidate.digest}),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "Could not set lock" not in output
    assert "Executing steps using multiprocess executor" in output
    assert "RUN_SUCCESS" in output


def _job(name, selection):
    return dg.define_asset_job(name, selection=selection)


def _registry():
    from ml_release.home import registry_path
    from ml_release.registry import Registry

    return Registry(registry_path())


def test_release_decision_alone_in_a_later_run_refuses_after_a_failed_gate(make_release, demo):
    broken = scenarios.null_flood(demo.evaluation, "annual_income", rate=0.3)
    spec = make_release(replace(demo, evaluation=broken))
    defs = build_definitions(spec)
    instance = dg.DagsterInstance.ephemeral()
    digest, first = gate(spec, defs, instance)
    materialized = {e.asset_key.to_user_string() for e in first.get_asset_materialization_events()}
    assert keys.CANDIDATE_MODEL in materialized and keys.RELEASE_DECISION not in materialized
    alone = _job("decision_only", dg.AssetSelection.assets(keys.RELEASE_DECISION))
    _, second = gate(spec, defs, instance, alone)  # the same candidate: the same digest
    assert not second.success
    failure = next(e for e in second.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "null_rate_threshold on evaluation_features: fail" in str(
        failure.step_failure_data.error
    )
    registry = _registry()
    assert registry.alias(spec.model.name) is None
    assert registry.events(spec.model.name, ("blocked",))[0].digest == digest


def test_verdicts_on_other_data_are_stale_for_a_later_decision(make_release, home, demo):
    spec = make_release()
    defs = build_definitions(spec)
    instance = dg.DagsterInstance.ephemeral()
    judge_only = _job(
        "judge_only",
        dg.AssetSelection.all()
        - dg.AssetSelection.assets(keys.RELEASE_DECISION, keys.PRODUCTION_MODEL),
    )
    digest, judged = gate(spec, defs, instance, judge_only)
    assert judged.success
    # The holdout changes and is reloaded without its checks: the verdicts no longer describe
    # the data, so a later decision for the same candidate refuses them as stale.
    changed = demo.evaluation.sample(frac=0.9, random_state=1)
    changed.to_parquet(home / "demo" / "evaluation_holdout.parquet", index=False)
    reload = _job(
        "reload",
        dg.AssetSelection.assets(
            keys.EVALUATION_HOLDOUT, keys.EVALUATION_FEATURES
        ).without_checks(),
    )
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[reload]))
    assert merged.resolve_job_def("reload").execute_in_process(instance=instance).success
    decision = _job("decision_only", dg.AssetSelection.assets(keys.RELEASE_DECISION))
    result = gate(spec, defs, instance, decision)[1]
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "judged on other data" in str(failure.step_failure_data.error)
    registry = _registry()
    assert registry.alias(spec.model.name) is None
    assert registry.events(spec.model.name, ("stale",))[0].digest == digest


def test_a_blocked_run_launched_outside_the_cli_reaches_the_ledger(make_release, home, demo):
    from ml_release.jobs import outcome_of_run
    from ml_release.promotion import record_outcome

    broken = scenarios.null_flood(demo.evaluation, "annual_income", rate=0.3)
    spec = make_release(replace(demo, evaluation=broken))
    defs = build_definitions(spec)
    with dg.DagsterInstance.ephemeral() as instance:
        digest, result = gate(spec, defs, instance, keys.RELEASE_JOB)  # as a UI or sensor run
        run = instance.get_run_by_id(result.run_id)
        failure = next(
            e.dagster_event
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        from_log = outcome_of_run(instance, run.run_id)
        assert from_log.blocked and from_log.partition == digest
        sensor = defs.resolve_sensor_def(keys.BLOCKED_RUN_SENSOR)
        context = dg.build_run_status_sensor_context(
            sensor_name=keys.BLOCKED_RUN_SENSOR,
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure,
            resources={"model_registry": defs.resources["model_registry"]},
        ).for_run_failure()
        for _ in range(2):  # a re-evaluated tick records nothing twice
            sensor(context)
    registry = _registry()
    [blocked] = registry.events(spec.model.name, ("blocked",))
    assert blocked.lineage == {"run_id": run.run_id} and blocked.digest == digest
    assert blocked.version == from_log.candidate["candidate_version"]
    assert "null_rate_threshold (evaluation_features)" in blocked.reason
    assert record_outcome(registry, spec.model.name, spec.spec_hash, from_log) is None  # CLI
    assert len(registry.events(spec.model.name, ("blocked",))) == 1
