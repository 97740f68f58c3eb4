"""Canary rollouts: the step loop on a simulated split, then real servers behind the router."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from ml_release.artifacts.manifest import read_manifest
from ml_release.canary.controller import run_steps
from ml_release.canary.rollout import Candidate, recover, rollout
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.errors import ConflictError
from ml_release.gates.result import Verdict
from ml_release.registry import PRODUCTION, Registry
from ml_release.serving.router import RouteRecord, TrafficSplit, backend_for
from ml_release.spec import CanarySpec, parse_spec
from ml_release.store import register_stored
from tests.conftest import PROJECT, spec_dict

FAST = CanarySpec(enabled=True, steps=[5, 25, 50, 100], requests_per_step=2000, error_margin=0.01)


class SimulatedSplit(TrafficSplit):
    """A split whose backends are random streams: error rate and log-normal latency per arm."""

    def __init__(self, candidate_error: float, candidate_error_from_step: int = 0, seed: int = 0):
        self._weight, self._records = 0.0, []
        self.rng = np.random.default_rng(seed)
        self.candidate_error, self.from_step = candidate_error, candidate_error_from_step
        self.weights: list[float] = []

    @property
    def weight(self) -> float:
        return self._weight

    def set_weight(self, percent: float) -> None:
        self._weight = percent
        self.weights.append(percent)

    def mark(self) -> int:
        return len(self._records)

    def records(self, since=0, start=None, end=None):
        return self._records[since:]

    def send(self, index: int, n: int) -> None:
        for k in range(n):
            request_id = f"s{index}-{k}"
            backend = backend_for(request_id, self._weight)
            rate = 0.002
            if backend == "candidate" and index >= self.from_step:
                rate = self.candidate_error
            error = self.rng.random() < rate
            score = float(self.rng.uniform())
            self._records.append(
                RouteRecord(
                    request_id,
                    backend,
                    500 if error else 200,
                    float(self.rng.lognormal(np.log(0.01), 0.2)),
                    None if error else {"proba_0": [1 - score], "proba_1": [score]},
                    time.time(),
                )
            )


def test_a_healthy_canary_passes_every_step():
    split = SimulatedSplit(candidate_error=0.002)
    result = run_steps(split, lambda i: split.send(i, FAST.requests_per_step), FAST, {})
    assert result.verdict is Verdict.PASS, result.reason
    assert [look.step for look in result.looks] == [5, 25, 50, 100]
    assert split.weights == [5, 25, 50, 100]  # left at 100 for the promotion


def test_an_error_burst_from_the_25_percent_step_aborts_there_and_returns_traffic():
    split = SimulatedSplit(candidate_error=0.08, candidate_error_from_step=1)
    result = run_steps(split, lambda i: split.send(i, FAST.requests_per_step), FAST, {})
    assert result.verdict is Verdict.FAIL
    assert result.failed_step == 25
    assert split.weights[-1] == 0  # traffic back to production
    assert "error_rate" in result.reason


def test_the_canary_verdict_carries_every_gate_s_evidence_shape():
    from ml_release.canary.controller import canary_evidence

    split = SimulatedSplit(candidate_error=0.08, candidate_error_from_step=1)
    aborted = run_steps(split, lambda i: split.send(i, FAST.requests_per_step), FAST, {})
    evidence = canary_evidence(aborted, "canary_analysis", "canary_rollout", "hash")
    assert evidence.verdict is Verdict.FAIL and evidence.method.startswith("error_rate: ")
    assert evidence.observed > evidence.baseline + evidence.threshold  # 8 % against 0.2 %
    assert evidence.interval[0] > evidence.threshold  # the interval lies above the margin
    assert evidence.support["candidate"] > 0 and evidence.support["production"] > 0
    assert {row["step_percent"] for row in evidence.rows} == {5, 25}
    fields = evidence.evidence()  # what canary_analysis's metadata holds, as for every gate
    shared = {"observed", "baseline", "delta", "interval", "threshold", "direction", "support"}
    assert shared | {"verdict", "spec_hash", "method"} <= set(fields)
    assert fields["verdict"] == "fail" and fields["spec_hash"] == "hash"

    split = SimulatedSplit(candidate_error=0.002)
    passed = run_steps(split, lambda i: split.send(i, FAST.requests_per_step), FAST, {})
    evidence = canary_evidence(passed, "canary_analysis", "canary_rollout", "hash")
    assert evidence.verdict is Verdict.PASS and evidence.interval[1] <= evidence.threshold


def test_a_step_that_never_finishes_fails_after_the_deadline():
    settings = FAST.model_copy(update={"deadline_seconds": 0.3})
    split = SimulatedSplit(candidate_error=0.0)
    release = threading.Event()

    def hang(index: int) -> None:
        release.wait(10)

    try:
        result = run_steps(split, hang, settings, {})
    finally:
        release.set()
    assert result.verdict is Verdict.FAIL and result.failed_step == 5
    assert "deadline_seconds" in result.reason and split.weights[-1] == 0


def test_no_candidate_traffic_is_a_failure_not_a_pass():
    split = SimulatedSplit(candidate_error=0.0)
    result = run_steps(split, lambda i: None, FAST, {})  # nothing is ever sent
    assert result.verdict is Verdict.FAIL and "no data" in result.reason


def test_too_little_traffic_to_tell_is_inconclusive_and_never_promotes():
    settings = FAST.model_copy(update={"requests_per_step": 60})
    split = SimulatedSplit(candidate_error=0.002)
    result = run_steps(split, lambda i: split.send(i, 60), settings, {})
    assert result.verdict is Verdict.INCONCLUSIVE
    assert split.weights[-1] == 0


def test_steps_must_increase_to_100():
    with pytest.raises(ValueError, match="steps"):
        CanarySpec(steps=[25, 5, 100])
    with pytest.raises(ValueError, match="steps"):
        CanarySpec(steps=[5, 50])


# -- real servers behind the router ------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo):
    """Production, a healthy candidate and one that refuses every request, registered."""
    from tests.feature_variants import extra_column
    from tests.serving_support import DEMO_CODE, ModelStore, server_options

    store = ModelStore(tmp_path_factory.mktemp("store"), demo.training)
    extended = demo.training.assign(credit_score=600.0)
    folders = {
        "prod": store.publish("prod", store.fit(DEMO_CODE, "logistic_regression", {"C": 1.0})),
        "twin": store.publish("twin", store.fit(DEMO_CODE, "logistic_regression", {"C": 0.5})),
        "refuses": store.publish(
            "refuses",
            store.fit(
                "tests.feature_variants.extra_column",
                "logistic_regression",
                {},
                x=extended[list(extra_column.REQUIRED_COLUMNS)],
            ),
            features=extra_column.REQUIRED_COLUMNS,
        ),
    }
    return store.root, folders, server_options(tmp_path_factory.mktemp("app"))


@pytest.fixture()
def setup(served, demo, tmp_path):
    from tests.serving_support import ref

    """A registry with production = prod, the spec, and the logged traffic."""
    import pandas as pd

    from ml_release.shadow.replay import LoggedRequests

    root, folders, options = served
    registry = Registry(tmp_path / "registry.duckdb")
    for folder in folders.values():
        register_stored(registry, read_manifest(folder), folder)
    registry.move_production("credit_default", "prod", expected=None, event="promoted", step="p")
    canary = {"enabled": True, "requests_per_step": 150, "error_margin": 0.05}
    spec = parse_spec(spec_dict(canary=canary), PROJECT / "release.yaml")
    log = demo.serving_log.sort_values("event_time").head(600)
    traffic = LoggedRequests(
        request_ids=log["request_id"].tolist(),
        raw=pd.DataFrame([json.loads(t) for t in log["request"]]),
        logged_score=log["prediction"].to_numpy(float),
        logged_latency_ms=log["latency_ms"].to_numpy(float),
        labels=pd.to_numeric(log["defaulted"], errors="coerce").to_numpy(float),
    )

    def run(name: str, **kw):
        manifest = read_manifest(folders[name])
        return rollout(
            spec,
            registry,
            Candidate(name, manifest.sha256, folders[name]),
            ref("prod", folders["prod"]),
            root,
            traffic,
            dict(REQUIRED_COLUMNS),
            options,
            tmp_path / "work",
            tmp_path / "canary" / "credit_default.json",
            **kw,
        )

    return registry, run, tmp_path / "canary" / "credit_default.json"


@pytest.mark.slow
def test_a_refusing_candidate_is_aborted_at_the_first_step_and_production_stays(setup):
    registry, run, state = setup
    result = run("refuses")
    assert result.verdict is Verdict.FAIL and result.failed_step == 5
    assert registry.alias("credit_default", PRODUCTION) == "prod"
    events = [e.event for e in registry.events("credit_default")]
    assert events[-2:] == ["canary_step", "canary_aborted"]
    assert not state.exists()


@pytest.mark.slow
def test_a_healthy_candidate_goes_through_every_step(setup):
    registry, run, _ = setup
    result = run("twin")
    assert [look.step for look in result.looks] == [5, 25, 50, 100]
    assert result.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE), result.reason
    assert all(look.decision is not Verdict.FAIL for look in result.looks)
    steps = [e for e in registry.events("credit_default") if e.event == "canary_step"]
    assert len(steps) == 4 and steps[-1].verdicts
    served = result.looks[-1].served
    assert served["candidate"] > 0 and served["production"] > 0


@pytest.mark.slow
def test_killing_the_candidate_mid_rollout_aborts_with_production_answering(setup):
    registry, run, _ = setup
    killed = []

    def on_look(look):
        if look.step == 5:  # kill the candidate server before the 25 % step's traffic
            for process in psutil.process_iter(["cmdline"]):
                cmdline = " ".join(process.info["cmdline"] or [])
                if "ml_release.serving.launch" in cmdline and "/work/candidate" in cmdline:
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(cmdline)

    result = run("twin", on_look=on_look)
    assert killed, "no candidate server found to kill"
    assert result.verdict is Verdict.FAIL and result.failed_step == 25
    # The production path served every request it got; the candidate's failures are its own.
    errors = result.looks[-1].results["error_rate"]
    assert errors.production == 0 and errors.candidate > 0
    assert registry.alias("credit_default", PRODUCTION) == "prod"
    assert registry.events("credit_default")[-1].event == "canary_aborted"


def test_an_unfinished_canary_of_a_dead_controller_is_recorded_as_aborted(tmp_path):
    registry = Registry(tmp_path / "registry.duckdb")
    state = tmp_path / "canary" / "m.json"
    state.parent.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    state.write_text(
        json.dumps({"version": "v2", "digest": "d" * 64, "step": 25.0, "pid": int(dead.stdout)})
    )
    assert recover(state, registry, "m") == "v2"
    event = registry.events("m")[-1]
    assert event.event == "canary_aborted" and "25 % step" in event.reason
    assert not state.exists()


def test_a_running_canary_is_not_taken_over(tmp_path):
    registry = Registry(tmp_path / "registry.duckdb")
    state = tmp_path / "m.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state.write_text(
            json.dumps({"version": "v2", "digest": "d" * 64, "step": 5.0, "pid": sleeper.pid})
        )
        with pytest.raises(ConflictError, match="is running"):
            recover(state, registry, "m")
        assert state.exists()
    finally:
        sleeper.kill()
