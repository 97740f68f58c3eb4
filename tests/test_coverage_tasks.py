"""`ml-release coverage` on regression and multi-class specs: the examples' own data and models.

Each example's real release graph runs once per mode in a scratch home. The healthy control
(a retrain on 90% of the training rows) must pass, each quality fault must be blocked by a
named gate of the task, and a mode the task has no meaning for is listed as not applicable.
"""

import importlib

import pytest

from ml_release.coverage.run import run_coverage
from ml_release.jobs import execute_for_coverage
from ml_release.spec import load_spec
from tests.conftest import PROJECT

MODES = [
    "renamed_column",
    "global_quality_drop",
    "segment_regression",
    "calibration_worsened",
    "non_finite_outputs",
    "output_schema_change",
]


@pytest.mark.parametrize(
    ("example", "blocked", "not_applicable"),
    [
        (
            "regression",
            {
                "global_quality_drop": "mae_vs_baseline",
                "segment_regression": "segment_mae_vs_baseline",
                "calibration_worsened": "max_calibration_in_the_large",
                "non_finite_outputs": "valid_predictions",
            },
            "output_schema_change",
        ),
        (
            "multiclass",
            {
                "global_quality_drop": "macro_f1_vs_baseline",
                "segment_regression": "segment_macro_f1_vs_baseline",
                "non_finite_outputs": "valid_predictions",
            },
            "calibration_worsened",
        ),
    ],
)
@pytest.mark.slow
def test_coverage_of_a_task_example_blocks_its_faults_and_passes_the_control(
    home, tmp_path, example, blocked, not_applicable
):
    importlib.import_module(f"examples.{example}.data").write_data()
    spec = load_spec(PROJECT / "examples" / example / "release.yaml")

    result = run_coverage(spec, tmp_path / "coverage", execute_for_coverage, modes=MODES)

    assert result.control_passed, (result.control.gates, result.control.failures)
    assert result.errored == []
    runs = {run.mode: run for run in result.runs}
    for mode, gate in blocked.items():
        assert runs[mode].caught and gate in runs[mode].blocked_by, (mode, runs[mode].gates)
    assert runs["renamed_column"].outcome == "expected error"  # the clear DataInputError
    assert result.skipped[not_applicable] == f"not defined for model.task {spec.model.task}"
    if example == "multiclass":  # renamed classes are refused before any gate scores them
        assert runs["output_schema_change"].outcome == "expected error"
        assert "do not include" in runs["output_schema_change"].failures[0]["message"]
    assert result.exit_code == 0
