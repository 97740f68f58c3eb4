"""`ml-release` exit codes: 0 passed, 1 blocked by a gate, 2 bad input; errors name the fix."""

from dataclasses import replace

import pytest

from ml_release.cli import main
from ml_release.demo import scenarios
from ml_release.home import registry_path
from ml_release.registry import Registry
from tests.conftest import spec_dict, write_spec


@pytest.mark.slow
def test_run_promotes_a_healthy_candidate_then_a_retry_changes_nothing(make_release, capsys):
    spec = make_release()
    assert main(["--spec", str(spec.source), "run"]) == 0
    out = capsys.readouterr().out
    assert "PROMOTED" in out and "no baseline" in out and "feature_schema" in out
    # Training is deterministic and artifacts reproducible: the same candidate again.
    assert main(["--spec", str(spec.source), "run"]) == 0
    assert "already in production" in capsys.readouterr().out
    registry = Registry(registry_path())
    assert len(registry.events(spec.model.name, ("promoted",))) == 1


def test_run_is_blocked_by_a_failing_gate(make_release, demo, capsys):
    broken = scenarios.unseen_categories(demo.evaluation, "employment_type", rate=0.2)
    spec = make_release(replace(demo, evaluation=broken))
    assert main(["--spec", str(spec.source), "run"]) == 1
    out = capsys.readouterr().out
    assert "BLOCKED by categorical_drift (evaluation_features)" in out
    registry = Registry(registry_path())
    assert registry.alias(spec.model.name) is None  # production never moved
    blocked = registry.events(spec.model.name, ("blocked",))
    assert len(blocked) == 1 and "categorical_drift" in blocked[0].reason


def test_run_with_missing_data_is_bad_input_before_anything_runs(home, tmp_path, capsys):
    path = write_spec(tmp_path, spec_dict())
    assert main(["--spec", str(path), "run"]) == 2
    out = capsys.readouterr().out
    assert "source file not found" in out and "ml-release demo-data" in out


def test_run_with_a_bad_spec_is_bad_input(home, tmp_path, capsys):
    data = spec_dict()
    data["gates"][0]["name"] = "feature_shema"
    path = write_spec(tmp_path, data)
    assert main(["--spec", str(path), "run"]) == 2
    assert "Did you mean 'feature_schema'" in capsys.readouterr().out


def test_run_with_unreadable_data_is_refused_before_anything_is_registered(
    make_release, demo, capsys
):
    spec = make_release(
        replace(
            demo,
            evaluation=scenarios.rename_column(demo.evaluation, "annual_income", "annual_incme"),
        )
    )
    assert main(["--spec", str(spec.source), "run"]) == 2
    out = capsys.readouterr().out
    assert "evaluation_holdout" in out and "'annual_income'" in out and "Fix" in out
    assert "candidate:" not in out  # refused before a candidate was trained or registered


def test_validate_and_gates(make_release, capsys):
    spec = make_release()
    assert main(["--spec", str(spec.source), "validate"]) == 0
    assert main(["gates"]) == 0
    assert "## `training_serving_parity`" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_with_a_spec_outside_the_project(make_release):
    """The installed `ml-release` finds assets/checks/resources from the project it runs in."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import PROJECT

    spec = make_release()
    script = Path(sys.executable).with_name("ml-release")
    completed = subprocess.run(
        [str(script), "--spec", str(spec.source), "run"],
        cwd=PROJECT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "PROMOTED" in completed.stdout


def _trained_artifact(tmp_path, spec):
    from ml_release.demo.features import REQUIRED_COLUMNS
    from ml_release.demo.generate import generate
    from ml_release.model import build_pipeline
    from ml_release.publish import publish_candidate

    data = generate(seed=21, n_training=1500, n_evaluation=10, n_serving=10).training
    model = build_pipeline(
        spec.features.code,
        spec.features.numeric,
        spec.features.categorical,
        "logistic_regression",
        {},
    )
    model.fit(data[list(REQUIRED_COLUMNS)], data["defaulted"])
    return publish_candidate(model, spec, version="external-1", home=tmp_path / "out")


def test_run_gates_a_given_candidate_and_history_and_status_show_it(make_release, tmp_path, capsys):
    spec = make_release()
    artifact = _trained_artifact(tmp_path, spec)
    assert main(["--spec", str(spec.source), "run", "--candidate", str(artifact)]) == 0
    assert "external-1" in capsys.readouterr().out
    assert Registry(registry_path()).alias(spec.model.name) == "external-1"
    assert main(["--spec", str(spec.source), "history"]) == 0
    assert main(["--spec", str(spec.source), "status"]) == 0
    out = capsys.readouterr().out
    assert "first release: no baseline" in out and "production external-1" in out


def test_register_publishes_into_incoming(make_release, tmp_path, home, capsys):
    spec = make_release()
    artifact = _trained_artifact(tmp_path, spec)
    assert main(["--spec", str(spec.source), "register", str(artifact)]) == 0
    assert (home / "incoming" / artifact.name / "manifest.json").exists()
    pickle_file = tmp_path / "model.skops"
    pickle_file.write_bytes(b"\x80\x04K\x01.")  # a pickle disguised as skops
    assert main(["--spec", str(spec.source), "register", str(pickle_file)]) == 4
    assert "never loads pickles" in capsys.readouterr().out


def test_rollback_exit_codes(make_release, tmp_path, capsys):
    spec = make_release()
    assert main(["--spec", str(spec.source), "rollback"]) == 2  # nothing in production
    assert "nothing in production" in capsys.readouterr().out
