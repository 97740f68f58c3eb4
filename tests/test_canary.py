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
from ml_release.serving.traffic import RouteRecord, TrafficSplit, backend_for
from ml_release.spec import CanarySpec, parse_spec
from ml_release.store import register_stored
from tests.conftest import PROJECT, spec_dict

FAST = CanarySpec(
    enabled=True,
    steps=[5, 25, 50, 100],
    requests_per_step=2000,
    error_margin=0.01,
    quality_margin=None,  # the simulated split has no labels
)


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
    shared = {"observed", "baseline", "delta", "threshold", "direction", "support"}
    shared |= {"interval_low", "interval_high"}
    assert shared | {"verdict", "spec_hash", "method"} <= set(fields)
    assert fields["verdict"] == "fail" and fields["spec_hash"] == "hash"

    split = SimulatedSplit(candidate_error=0.002)
    passed = run_steps(split, lambda i: split.send(i, FAST.requests_per_step), FAST, {})
    evidence = canary_evidence(passed, "canary_analysis", "canary_rollout", "hash")
    assert evidence.verdict is Verdict.PASS and evidence.interval[1] <= evidence.threshold


@pytest.mark.reliability("fault")
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


@pytest.mark.reliability("fault")
def test_no_candidate_traffic_is_a_failure_not_a_pass():
    split = SimulatedSplit(candidate_error=0.0)
    result = run_steps(split, lambda i: None, FAST, {})  # nothing is ever sent
    assert result.verdict is Verdict.FAIL and "no data" in result.reason


def test_a_step_without_enough_fresh_requests_ends_inconclusive_without_repeating_any():
    from ml_release.canary.controller import NotEnoughTraffic

    split = SimulatedSplit(candidate_error=0.002)

    def send(index: int) -> None:
        if index == 2:
            raise NotEnoughTraffic("it needs 2000 fresh logged requests and 700 are left")
        split.send(index, FAST.requests_per_step)

    result = run_steps(split, send, FAST, {})
    assert result.verdict is Verdict.INCONCLUSIVE and "not enough traffic" in result.reason
    assert "50 % step" in result.reason and split.weights[-1] == 0
    assert [look.step for look in result.looks] == [5, 25]


def test_the_traffic_plan_never_cycles_the_log():
    import pandas as pd

    from ml_release.canary.rollout import traffic_plan
    from ml_release.shadow.replay import LoggedRequests

    log = LoggedRequests(
        request_ids=[f"r{i}" for i in range(10)],
        raw=pd.DataFrame({"age": np.arange(10.0)}),
        logged_score=np.zeros(10),
        logged_latency_ms=np.zeros(10),
        labels=np.where(np.arange(10) < 4, 1.0, np.nan),
    )
    bodies, ids, labels = traffic_plan(log, {"age": "numeric"}, per_step=4, steps=4)
    assert ids == [f"r{i}" for i in range(10)] and len(bodies) == 10  # each request once
    assert labels == {"r0": 1.0, "r1": 1.0, "r2": 1.0, "r3": 1.0}


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

    def run(name: str, timeout: float | None = None, **kw):
        manifest = read_manifest(folders[name])
        settings = (
            spec.canary
            if timeout is None
            else spec.canary.model_copy(update={"timeout_seconds": timeout})
        )
        return rollout(
            spec.model_copy(update={"canary": settings}),
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
def test_a_healthy_candidate_goes_through_every_step(setup, tmp_path):
    from resources import TrafficSplitResource

    class CountingSplit(TrafficSplitResource):
        """A deployment's own split resource: here the local router, counted."""

        def open(self, production_port, candidate_port, model, timeout_s):
            opened.append((model, timeout_s))
            return super().open(production_port, candidate_port, model, timeout_s)

    opened = []
    registry, run, _ = setup
    result = run("twin", open_split=CountingSplit(state_dir=str(tmp_path)).open)
    assert [model for model, _ in opened] == ["credit_default"]  # through the given split
    assert [look.step for look in result.looks] == [5, 25, 50, 100]
    assert result.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE), result.reason
    assert all(look.decision is not Verdict.FAIL for look in result.looks)
    steps = [e for e in registry.events("credit_default") if e.event == "canary_step"]
    assert len(steps) == 4 and steps[-1].verdicts
    served = result.looks[-1].served
    assert served["candidate"] > 0 and served["production"] > 0


@pytest.mark.reliability("fault")
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_candidate_killed_or_hung_mid_rollout_aborts_with_production_answering(setup, fault):
    registry, run, _ = setup
    hit = []

    def on_look(look):
        if look.step == 5:  # before the 25 % step's traffic: SIGKILL, or SIGSTOP (a hang)
            # This test's own candidate server: a child of this process (other workers run
            # servers with the same folder names).
            for process in psutil.Process().children(recursive=True):
                cmdline = " ".join(process.cmdline())
                if "ml_release.serving.launch" in cmdline and "/work/candidate" in cmdline:
                    os.kill(process.pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
                    hit.append(process)

    # A hung candidate costs a timeout per request: a short one keeps the test short.
    result = run("twin", on_look=on_look, timeout=0.5 if fault == "hung" else None)
    assert hit, "no candidate server found"
    assert result.verdict is Verdict.FAIL and result.failed_step == 25
    # The production path served every request it got; the candidate's failures are its own.
    errors = result.looks[-1].results["error_rate"]
    assert errors.production == 0 and errors.candidate > 0
    assert registry.alias("credit_default", PRODUCTION) == "prod"
    assert registry.events("credit_default")[-1].event == "canary_aborted"
    psutil.wait_procs(hit, timeout=15)  # SIGKILL reaches a stopped process: give it time
    assert not any(_alive(process) for process in hit)  # the hung one was stopped too


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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


def test_the_canary_marker_lives_where_the_traffic_split_resource_says(home):
    """The asset reads the marker through `traffic_split`: the embedded default is the home's."""
    from resources import TrafficSplitResource, local_resources

    assert local_resources()["traffic_split"].state_file("m") == home / "canary" / "m.json"
    moved = TrafficSplitResource(state_dir=str(home / "elsewhere"))
    assert moved.state_file("m") == home / "elsewhere" / "m.json"


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
        sleeper.wait()  # reaped here, not left to the garbage collector


# -- the composed analysis, by simulation ------------------------------------------------------
def _steps(rng, settings, error=(0.005, 0.005), log_shift=0.0, score_shift=0.0, loss_shift=0.0,
           drift=0.0, labelled=0.5):  # fmt: skip
    """Synthetic steps of one canary: both arms' requests per step as `analyze` reads them.

    `drift` raises every arm's error rate, log latency and loss by that much per step (traffic
    changing over time); the `*_shift` arguments are the candidate's difference from production.
    """
    from ml_release.canary.analysis import ArmRequests, StepRequests

    steps = []
    for k, share in enumerate(settings.steps):
        n_c = round(settings.requests_per_step * share / 100)
        arms = {}
        for arm, n, rate, shift in (
            ("candidate", n_c, error[0], (log_shift, score_shift, loss_shift)),
            ("production", settings.requests_per_step - n_c, error[1], (0.0, 0.0, 0.0)),
        ):
            errors = rng.uniform(size=n) < rate * (1 + drift * k)
            ok = int((~errors).sum())
            losses = rng.exponential(0.4, int(ok * labelled)) + shift[2] + drift * k * 0.1
            arms[arm] = ArmRequests(
                errors,
                rng.normal(np.log(0.05) + shift[0] + drift * k * 0.2, 0.5, ok),
                np.clip(rng.normal(0.3 + shift[1], 0.2, ok), 0, 1),
                losses,
            )
        steps.append(StepRequests(share, arms))
    return steps


def _aborted(settings, canaries: int, seed: int, **truth) -> np.ndarray:
    """Per canary: whether any look of the composed analysis aborted it."""
    from ml_release.canary.analysis import analyze

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(canaries):
        steps = _steps(rng, settings, **truth)
        looks = [analyze(steps[: k + 1], settings, k == len(steps) - 1) for k in range(len(steps))]
        out.append(any(look.decision is Verdict.FAIL for look in looks))
    return np.array(out)


# The default margins, and a quality comparison (off by default) on half the requests' labels.
CANARY = CanarySpec(enabled=True, requests_per_step=2000, quality_margin=0.1)


def test_a_candidate_at_every_margin_at_once_is_aborted_at_most_alpha_of_the_time():
    at_margin = {
        "error": (0.005 + CANARY.error_margin, 0.005),
        "log_shift": np.log1p(CANARY.latency_margin),
        "score_shift": CANARY.score_shift_margin,
        "loss_shift": CANARY.quality_margin,
    }
    aborted = _aborted(CANARY, 300, seed=1, **at_margin)
    assert aborted.mean() <= CANARY.alpha, aborted.mean()  # four comparisons, one alpha


def test_traffic_drifting_over_the_steps_is_not_read_as_a_worse_candidate():
    from ml_release.stats.sequential import error_rate_sequence

    drifting = {"drift": 3.0}  # errors 0.5 % -> 5 %, latency x6, loss up: both arms alike
    assert not _aborted(CANARY, 100, seed=2, **drifting).any()
    # Pooling each arm over the canary compares the candidate's late traffic with
    # production's early traffic: the same data abort a pooled error-rate test.
    rng = np.random.default_rng(2)
    pooled = []
    for _ in range(100):
        steps = _steps(rng, CANARY, **drifting)
        arms = ("candidate", "production")
        errors = {a: [int(s.arms[a].errors.sum()) for s in steps] for a in arms}
        served = {a: [s.served(a) for s in steps] for a in arms}
        pooled.append(
            error_rate_sequence(
                sum(errors["candidate"]), sum(served["candidate"]),
                sum(errors["production"]), sum(served["production"]),
                CANARY.error_margin, final=True, tuned_n=4000,
            ).abort
        )  # fmt: skip
    assert np.mean(pooled) > 0.5


def test_real_regressions_are_caught():
    assert _aborted(CANARY, 60, seed=3, error=(0.05, 0.005)).mean() >= 0.95
    assert _aborted(CANARY, 60, seed=4, log_shift=np.log(1.6)).mean() >= 0.95


def test_without_labels_by_the_last_step_quality_is_inconclusive_not_a_pass():
    from ml_release.canary.analysis import analyze

    rng = np.random.default_rng(5)
    unlabelled = _steps(rng, CANARY, labelled=0.0)
    final = analyze(unlabelled, CANARY, True)
    assert final.decision is Verdict.INCONCLUSIVE
    assert final.results["quality"].decision is Verdict.INCONCLUSIVE
    assert any("no labelled request by the last step" in r for r in final.reasons)
    # Margins a healthy candidate can meet with 1,600 candidate requests in the shared steps.
    wide = CANARY.model_copy(update={"error_margin": 0.02, "quality_margin": 0.1})
    labelled = analyze(_steps(rng, wide), wide, True)
    assert labelled.decision is Verdict.PASS, labelled.reasons
    off = wide.model_copy(update={"quality_margin": None})
    assert "quality" not in analyze(unlabelled, off, True).results


def test_canary_without_a_version_never_picks_a_candidate_a_canary_already_concluded(
    home, monkeypatch
):
    """The default candidate is the latest gated one still awaiting its canary: a later blocked
    run leaves nothing to canary, rather than the earlier, already promoted candidate."""
    from ml_release.cli import release
    from ml_release.errors import NotFoundError

    registry = Registry(home / "registry.duckdb")
    monkeypatch.setattr(release, "reader", lambda: registry)
    for version in ("v1", "v2", "v3"):
        registry.register("m", version, version * 8, f"/store/{version}", {})
    registry.record("m", "gated", version="v1", digest="v1" * 8)
    registry.move_production("m", "v1", expected=None, event="promoted", step="canary")
    registry.record("m", "gated", version="v2", digest="v2" * 8)
    registry.record("m", "canary_aborted", version="v2", digest="v2" * 8)
    registry.record("m", "blocked", version="v3", digest="v3" * 8)

    with pytest.raises(NotFoundError, match="no candidate awaiting a canary"):
        release.gated_candidate("m", None)

    registry.record("m", "gated", version="v3", digest="v3" * 8)
    assert release.gated_candidate("m", None) == ("v3", "v3" * 8)
    assert release.gated_candidate("m", "v1") == ("v1", "v1" * 8)
