"""The run outcome reads Dagster's events by name: the names must be the installed Dagster's."""

from types import SimpleNamespace

import dagster as dg

from ml_release.outcome import CHECK_BLOCKING_SEVERITY, EVENT_TYPES, outcome_from_events


def test_the_event_names_read_are_the_installed_dagster_s():
    for member, value in EVENT_TYPES.items():
        assert getattr(dg.DagsterEventType, member).value == value, member
    assert dg.AssetCheckSeverity.ERROR.value == CHECK_BLOCKING_SEVERITY


def test_a_run_that_failed_before_any_step_says_why():
    """A run the executor failed (a worker or broker error) has no step failure to report."""
    error = SimpleNamespace(cause=None, cls_name="OperationalError", message="broker unreachable")
    failed = SimpleNamespace(
        event_type=dg.DagsterEventType.RUN_FAILURE,
        event_specific_data=SimpleNamespace(error=error),
        message="Execution of run failed.",
    )
    outcome = outcome_from_events("run-1", [failed])
    assert outcome.failures == [
        {"step": "run", "error": "OperationalError", "message": "broker unreachable"}
    ]
    assert outcome.exit_code != 0


def test_a_step_failure_is_reported_with_its_step():
    @dg.op
    def boom():
        raise RuntimeError("the step's own message")

    @dg.job
    def broken():
        boom()

    result = broken.execute_in_process(raise_on_error=False)
    outcome = outcome_from_events(result.run_id, result.all_events)
    assert [(f["step"], f["error"]) for f in outcome.failures] == [("boom", "RuntimeError")]
    assert "the step's own message" in outcome.failures[0]["message"]
