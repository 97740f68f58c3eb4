"""Coverage modes that start model servers: the serving gates and the canary catch them.

Kept apart from tests/test_coverage.py so that pytest-xdist runs the two files on both workers.
"""

import pytest

from ml_release.coverage.run import run_coverage
from ml_release.jobs import execute_for_coverage
from ml_release.spec import load_spec
from tests.conftest import spec_dict, write_spec

LATENCY_GATES = {"serving_latency_p99_vs_baseline", "shadow_latency_vs_baseline"}


@pytest.mark.slow
def test_serving_modes_are_blocked_by_the_serving_gates(make_release, tmp_path):
    # Memory and library modes: the latency gates are left out, so the healthy control does
    # not need a quiet machine to pass and the test runs beside the others.
    make_release()  # the demo data
    data = spec_dict(serving=True)
    data["gates"] = [g for g in data["gates"] if g["name"] not in LATENCY_GATES]
    data["serving"] = {**data["serving"], "requests": 200, "warmup": 5}
    spec = load_spec(write_spec(tmp_path, data))

    result = run_coverage(
        spec,
        tmp_path / "work",
        execute_for_coverage,
        modes=["memory_growth", "incompatible_library"],
    )

    assert not result.control.caught, [
        (g["gate"], g["summary"]) for g in result.control.gates if not g["passed"]
    ]
    runs = {run.mode: run for run in result.runs}
    assert "serving_memory" in runs["memory_growth"].blocked_by
    assert "runtime_compatible" in runs["incompatible_library"].blocked_by
    assert result.exit_code == 0


@pytest.mark.slow
def test_a_canary_error_burst_aborts_the_canary_and_the_control_is_promoted(make_release, tmp_path):
    canary = {
        "enabled": True,
        "steps": [50, 100],
        "requests_per_step": 150,
        # Wide margins: the arms are compared within the 50 % step (75 requests each), which
        # must be enough for a healthy retrain to pass; no labels arrive during the canary.
        "error_margin": 0.1,
        "latency_margin": 1.0,
        "score_shift_margin": 0.3,
        "quality_margin": None,
    }
    spec = make_release(canary=canary)

    result = run_coverage(
        spec, tmp_path / "work", execute_for_coverage, modes=["canary_error_burst"]
    )

    assert result.control.promoted and not result.control.caught, [
        g["summary"] for g in result.control.gates if not g["passed"]
    ]
    assert result.control.cell("canary_analysis") == "passed"
    burst = result.runs[0]
    assert burst.caught and burst.cell("canary_analysis") == "blocked"
    # Offline the candidate was healthy: only the canary saw the fault.
    assert burst.blocked_by == ["canary_analysis"]
