"""The serving path against real MLServer processes: gates, bad input, cleanup, reload.

Every server here is a real `mlserver` process in the serving runtime's own virtualenv; nothing
about the runtime is mocked. Each gate has a case where it must say no.
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest

from ml_release.artifacts.manifest import MANIFEST_FILE, MODEL_FILE, read_manifest
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.gates.result import Verdict
from ml_release.registry import Registry
from ml_release.serving import server as server_module
from ml_release.serving.client import V2Client, encode_request
from ml_release.serving.environment import runtime_python
from ml_release.serving.gates import judge
from ml_release.serving.group import ServerStartError, serve_group
from ml_release.serving.run import run_serving_checks
from ml_release.serving.serve import serve_production
from ml_release.serving.server import (
    ServerOptions,
    ServingError,
    free_ports,
    serve_artifact,
    stop_processes,
)
from ml_release.spec import ServingSpec, parse_spec
from ml_release.store import register_stored, store_artifact
from ml_release.subjects import ModelRef
from tests.conftest import PROJECT, RUNTIME_DIR, spec_dict
from tests.feature_variants import extra_column
from tests.serving_support import DEMO_CODE, MODEL, ModelStore, ref, server_options

pytestmark = pytest.mark.slow

SETTINGS = ServingSpec(requests=120, warmup=10, batch_sizes=[16], batch_repeats=3)
STRICT = {"max_increase": 0.25}
GATES = [
    {"name": "serving_load_time", "max_seconds": 60},
    {"name": "serving_memory", "max_increase": 0.5},
    {"name": "serving_latency_p99_vs_baseline", "max_increase": 0.5},
    {"name": "batch_single_agreement"},
    {"name": "output_schema_stable"},
    {"name": "runtime_compatible"},
]


def spec_with(*gates: dict):
    """The project spec with only the given serving gates."""
    return parse_spec(spec_dict(gates=list(gates), allow_ungated=True), PROJECT / "release.yaml")


def verdicts(report, gates=GATES):
    """Gate name -> result for `report`."""
    spec = spec_with(*gates)
    return {g.name: judge(g, report, spec) for g in spec.gates}


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo):
    """An artifact store with the models the gates must tell apart."""
    models = ModelStore(tmp_path_factory.mktemp("store"), demo.training)
    fit, publish = models.fit, models.publish
    folders = {
        "production": publish("prod", fit(DEMO_CODE, "logistic_regression", {"C": 1.0})),
        "twin": publish("twin", fit(DEMO_CODE, "logistic_regression", {"C": 0.5})),
        "slow": publish(
            "slow",
            fit(DEMO_CODE, "random_forest", {"n_estimators": 400, "min_samples_leaf": 5}),
        ),
        "relabelled": publish(
            "relabelled",
            fit(DEMO_CODE, "logistic_regression", {}, labels=np.array(["no", "yes"])[models.y]),
        ),
        "batchy": publish(
            "batchy",
            fit("tests.feature_variants.batch_dependent", "logistic_regression", {}),
        ),
    }
    extended = demo.training.assign(credit_score=600.0)
    folders["newer_features"] = publish(
        "newer-features",
        fit(
            "tests.feature_variants.extra_column",
            "logistic_regression",
            {},
            x=extended[list(extra_column.REQUIRED_COLUMNS)],
        ),
        features=extra_column.REQUIRED_COLUMNS,
    )
    folders["old_sklearn"] = _as_written_by_old_sklearn(
        folders["twin"], models.root, models.staging
    )
    return models.root, folders


def _as_written_by_old_sklearn(folder: Path, root: Path, staging: Path) -> Path:
    """A copy of an artifact whose file and manifest say scikit-learn 1.5.0 wrote it."""
    data = (folder / MODEL_FILE).read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename == "schema.json":
                content = content.replace(b'\\"1.9.1\\"', b'\\"1.5.0\\"')
            target.writestr(entry, content)
    manifest = read_manifest(folder)
    versions = manifest.library_versions.model_copy(update={"scikit_learn": "1.5.0"})
    body = out.getvalue()
    import hashlib

    copy = staging / "old-sklearn"
    copy.mkdir(parents=True, exist_ok=True)
    (copy / MODEL_FILE).write_bytes(body)
    (copy / MANIFEST_FILE).write_text(
        manifest.model_copy(
            update={
                "version": "old-sklearn",
                "sha256": hashlib.sha256(body).hexdigest(),
                "size_bytes": len(body),
                "library_versions": versions,
            }
        ).model_dump_json()
    )
    return store_artifact(copy, root, move=True)[1]


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    """The serving runtime, with the tests folder on its path for the feature variants."""
    return server_options(tmp_path_factory.mktemp("app"), max_request_bytes=256 * 1024)


@pytest.fixture(scope="module")
def rows(demo):
    """Raw evaluation rows the requests are built from."""
    return demo.evaluation[list(REQUIRED_COLUMNS)].head(SETTINGS.requests).reset_index(drop=True)


@pytest.fixture(scope="module")
def check(store, options, rows, tmp_path_factory):
    """Run the serving checks for a candidate (against production unless `alone`)."""
    root, folders = store

    def run(candidate: str, alone: bool = False):
        production = None if alone else ref("prod", folders["production"])
        return run_serving_checks(
            ref(candidate, folders[candidate]),
            production,
            root,
            rows,
            dict(REQUIRED_COLUMNS),
            SETTINGS,
            options,
            tmp_path_factory.mktemp(f"work-{candidate}"),
            MODEL,
        )

    return run


@pytest.fixture(scope="module")
def healthy(check):
    """A candidate that differs from production only in its regularization."""
    return check("twin")


def _no_servers_left(folder_marker: str) -> bool:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "ml_release.serving.launch" in cmdline and folder_marker in cmdline:
            return False
    return True


def test_a_healthy_candidate_passes_every_serving_gate(healthy):
    results = verdicts(healthy)
    # The p99 ratio's interval from 120 interleaved requests: never a false fail, but on a
    # busy machine too wide to pass (tests/test_paired_stats.py judges the gate on
    # simulated busy-machine latencies, pass and fail).
    assert results["serving_latency_p99_vs_baseline"].verdict is not Verdict.FAIL
    others = {n: r for n, r in results.items() if n != "serving_latency_p99_vs_baseline"}
    assert {name: r.verdict for name, r in others.items()} == dict.fromkeys(others, Verdict.PASS), {
        n: r.summary for n, r in results.items()
    }
    # Measured for all three servers, in the same run.
    assert set(healthy.measurements) == {"candidate", "production", "production_replica"}
    for measurement in healthy.measurements.values():
        assert len(measurement.latencies_ms) == SETTINGS.requests
        assert measurement.load_seconds > 0 and measurement.peak_rss_mb > 50
        assert measurement.batches[0]["batch_size"] == 16
    latency = results["serving_latency_p99_vs_baseline"]
    assert latency.rows and {"p50_ms", "p95_ms", "p99_ms"} <= set(latency.rows[0])


def test_load_time_and_memory_limits_fail_when_exceeded(healthy):
    strict = [
        {"name": "serving_load_time", "max_seconds": 0.01},
        {"name": "serving_memory", "max_mb": 10},
    ]
    results = verdicts(healthy, strict)
    assert results["serving_load_time"].verdict is Verdict.FAIL
    assert "limit 0.01 s" in results["serving_load_time"].summary
    assert results["serving_memory"].verdict is Verdict.FAIL
    assert "ceiling of 10 MiB" in results["serving_memory"].summary


def test_a_slow_ensemble_fails_the_latency_gate(check):
    report = check("slow")
    gate = {"name": "serving_latency_p99_vs_baseline", **STRICT}
    result = verdicts(report, [gate])["serving_latency_p99_vs_baseline"]
    # Blocked either way: fail on a quiet machine, at worst inconclusive on a busy one.
    assert result.verdict is not Verdict.PASS, result.summary
    assert result.interval[1] > STRICT["max_increase"] and result.delta > 0
    assert report.candidate.percentile(50) > 1.5 * report.production.percentile(50)


def test_changed_output_columns_fail_the_schema_gate_field_by_field(check):
    report = check("relabelled")
    result = verdicts(report, [{"name": "output_schema_stable"}])["output_schema_stable"]
    assert result.verdict is Verdict.FAIL
    changed = {r["field"]: r for r in result.rows if r["status"] == "changed"}
    assert {"class labels", "probability columns", "output label.datatype"} <= set(changed)
    assert "proba_yes" in changed["probability columns"]["candidate"]
    assert "proba_1" in changed["probability columns"]["production"]
    assert changed["output label.datatype"]["candidate"] == "BYTES"


@pytest.mark.reliability("input")
def test_a_model_expecting_an_unsent_feature_is_incompatible(check):
    report = check("newer_features", alone=True)
    results = verdicts(report)
    compat = results["runtime_compatible"]
    assert compat.verdict is Verdict.FAIL
    assert any(
        r["check"] == "feature credit_score" and r["status"] == "not sent" for r in compat.rows
    )
    # The candidate refuses every request of the contract: no gate that needs answers passes.
    assert report.candidate.error_count > 0 and "credit_score" in report.candidate.errors[0]
    for name in ("serving_latency_p99_vs_baseline", "batch_single_agreement"):
        assert results[name].verdict is Verdict.FAIL, name


def test_batch_dependent_features_fail_the_agreement_gate(check):
    report = check("batchy", alone=True)
    result = verdicts(report, [{"name": "batch_single_agreement"}])["batch_single_agreement"]
    assert result.verdict is Verdict.FAIL
    assert result.support["disagreeing"] > 0 and result.examples
    example = result.examples[0]
    assert example["single"] != example["batch"]


@pytest.mark.reliability("input")
def test_a_model_written_by_another_scikit_learn_is_incompatible(check):
    report = check("old_sklearn", alone=True)
    compat = verdicts(report, [{"name": "runtime_compatible"}])["runtime_compatible"]
    assert compat.verdict is Verdict.FAIL
    statuses = {r["check"]: r for r in compat.rows}
    assert statuses["scikit_learn version"]["status"] == "mismatch"
    assert statuses["scikit_learn version"]["runtime"] == "1.9.1"
    # The loader's own warning is a failure too.
    assert any(
        r["check"] == "load warning" and "InconsistentVersionWarning" in r["runtime"]
        for r in compat.rows
    )


def test_a_candidate_that_does_not_load_fails_every_gate(store, options, rows, tmp_path):
    root, folders = store
    broken = root / MODEL / "broken"
    broken.mkdir()
    (broken / MODEL_FILE).write_bytes((folders["twin"] / MODEL_FILE).read_bytes()[:-10])
    (broken / MANIFEST_FILE).write_text((folders["twin"] / MANIFEST_FILE).read_text())
    report = run_serving_checks(
        ModelRef("broken", broken, read_manifest(folders["twin"]).sha256),
        None,
        root,
        rows,
        dict(REQUIRED_COLUMNS),
        SETTINGS,
        options,
        tmp_path / "work",
        MODEL,
    )
    assert (
        report.candidate.load_error and "does not match its manifest" in report.candidate.load_error
    )
    results = verdicts(report)
    assert all(r.verdict is Verdict.FAIL for r in results.values()), results
    assert _no_servers_left(str(tmp_path))


@pytest.fixture(scope="module")
def server(store, options, tmp_path_factory):
    """One production server for the bad-input tests."""
    root, folders = store
    folder = tmp_path_factory.mktemp("bad-input")
    with serve_artifact(folders["production"], root, folder, options, MODEL, "prod") as running:
        yield running
    assert running.process.poll() is not None


def _post(server, body: bytes):
    client = V2Client(server.port)
    try:
        status, content, _ = client.infer(MODEL, body)
    finally:
        client.close()
    return status, json.loads(content)


def _inputs(rows_df):
    return json.loads(encode_request(rows_df, dict(REQUIRED_COLUMNS)))["inputs"]


@pytest.mark.parametrize(
    ("case", "status", "names"),
    [
        ("missing field", 400, "'age'"),
        ("wrong type", 400, "inputs[1] ('annual_income')"),
        ("empty batch", 400, "empty batch"),
        ("shape mismatch", 400, "inputs[2] ('loan_amount')"),
        ("invalid JSON", 422, "JSON"),
        ("no datatype", 422, "body.inputs.0.datatype"),
        ("oversized body", 413, "max_request_bytes"),
    ],
)
@pytest.mark.reliability("input")
def test_bad_requests_get_a_4xx_naming_the_field_and_the_server_keeps_serving(
    server, rows, case, status, names
):
    inputs = _inputs(rows.head(3))
    if case == "missing field":
        body = json.dumps({"inputs": inputs[1:]})
    elif case == "wrong type":
        inputs[1] = {**inputs[1], "datatype": "BYTES", "data": ["a", "b", "c"]}
        body = json.dumps({"inputs": inputs})
    elif case == "empty batch":
        body = json.dumps({"inputs": [{**i, "shape": [0], "data": []} for i in inputs]})
    elif case == "shape mismatch":
        inputs[2] = {**inputs[2], "shape": [2], "data": inputs[2]["data"][:2]}
        body = json.dumps({"inputs": inputs})
    elif case == "invalid JSON":
        body = '{"inputs": [}'
    elif case == "no datatype":
        body = json.dumps({"inputs": [{k: v for k, v in inputs[0].items() if k != "datatype"}]})
    else:
        body = json.dumps({"inputs": _inputs(rows.head(1).sample(5000, replace=True))})
    answer_status, answer = _post(server, body.encode())
    assert answer_status == status
    assert names in answer["error"]
    good_status, good = _post(server, encode_request(rows.head(2), dict(REQUIRED_COLUMNS)))
    assert good_status == 200 and good["model_version"] == "prod"
    assert [o["name"] for o in good["outputs"]] == ["label", "proba_0", "proba_1"]


def test_readiness_and_metrics_endpoints(server):
    client = V2Client(server.port)
    assert client.call("GET", "/v2/health/ready")[0] == 200
    client.close()
    metrics = V2Client(server.metrics_port)
    status, content, _ = metrics.call("GET", "/metrics")
    metrics.close()
    assert status == 200 and b"model_infer_request_success" in content


def test_the_server_stops_when_the_block_raises(store, options, tmp_path):
    root, folders = store
    with pytest.raises(RuntimeError, match="boom"):
        with serve_artifact(folders["twin"], root, tmp_path, options, MODEL, "twin") as running:
            pid = running.process.pid
            raise RuntimeError("boom")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.reliability("fault")
def test_a_server_whose_parent_is_killed_stops_by_itself(store, tmp_path):
    root, folders = store
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ml_release.serving.server import ServerOptions, serve_artifact\n"
        f"options = ServerOptions(python=Path({str(runtime_python(RUNTIME_DIR))!r}))\n"
        f"with serve_artifact(Path({str(folders['twin'])!r}), Path({str(root)!r}), "
        f"Path({str(tmp_path)!r}), options, 'credit_default', 'twin') as s:\n"
        "    print(s.process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)  # no finally block runs in the parent
        parent.wait()
        deadline = time.monotonic() + 20
        while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not psutil.pid_exists(server_pid), "the orphaned server is still running"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_server_that_cannot_start_reports_its_log(store, tmp_path):
    root, folders = store
    options = ServerOptions(python=Path(sys.executable))  # no mlserver in this environment
    with pytest.raises(ServingError, match="exited with code"):
        with serve_artifact(folders["twin"], root, tmp_path, options, MODEL, "twin"):
            pass


def test_a_port_taken_before_the_server_binds_it_is_retried(store, options, tmp_path, monkeypatch):
    """Free ports are free when chosen, not when bound: another process can take one between.

    The server's log then ends with a long shutdown traceback, so the bind error is far from
    its tail; the retry must still see it.
    """
    root, folders = store
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    first_choice = [[taken.getsockname()[1], *free_ports(2)]]  # HTTP, gRPC, metrics

    def choose(count: int) -> list[int]:
        return first_choice.pop() if count == 3 and first_choice else free_ports(count)

    monkeypatch.setattr(server_module, "free_ports", choose)
    try:
        with serve_artifact(folders["twin"], root, tmp_path, options, MODEL, "twin") as running:
            assert running.port != taken.getsockname()[1]
            assert V2Client(running.port).call("GET", "/v2/health/ready")[0] == 200
    finally:
        taken.close()


def test_serve_follows_promotion_and_rollback(store, options, tmp_path):
    root, folders = store
    registry = Registry(tmp_path / "registry.duckdb")
    for name in ("production", "twin"):
        register_stored(registry, read_manifest(folders[name]), folders[name])
    registry.move_production(MODEL, "prod", expected=None, event="promoted", step="promote")
    lines: list[str] = []
    stop, failure = threading.Event(), []
    ports = tuple(free_ports(2))

    def serve():
        try:
            serve_production(
                registry,
                root,
                MODEL,
                options,
                tmp_path / "serve",
                ports,
                stop,
                log=lines.append,
                poll_seconds=0.1,
            )
        except Exception as exc:  # surfaced by the assertions below
            failure.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        _wait_for(lambda: any("serving" in line for line in lines) or failure)
        assert not failure, failure
        port = ports[0]
        registry.move_production(MODEL, "twin", expected="prod", event="promoted", step="promote")
        _wait_for(lambda: any("now serving twin" in line for line in lines))
        assert _served_version(port) == "twin"
        registry.move_production(
            MODEL, "prod", expected="twin", event="rolled_back", step="rollback"
        )
        _wait_for(lambda: any("now serving prod" in line for line in lines))
        assert _served_version(port) == "prod"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and not failure
    assert _no_servers_left(str(tmp_path / "serve"))


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _served_version(port: int) -> str:
    client = V2Client(port)
    try:
        return client.metadata(MODEL)["parameters"]["ml_release"]["artifact_version"]
    finally:
        client.close()


def test_serving_settings_are_validated():
    with pytest.raises(ValueError, match="batch_sizes"):
        ServingSpec(batch_sizes=[0])


@pytest.mark.reliability("input")
def test_reordered_inputs_give_identical_answers(server, rows):
    body = json.loads(encode_request(rows.head(20), dict(REQUIRED_COLUMNS)))
    reordered = {"inputs": body["inputs"][::-1]}
    status_a, a = _post(server, json.dumps(body).encode())
    status_b, b = _post(server, json.dumps(reordered).encode())
    assert status_a == status_b == 200
    assert a["outputs"] == b["outputs"]


STOPPABLE = """
import signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = __import__("subprocess").Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _dies(pid: int, seconds: float = 10.0) -> bool:
    """Whether `pid` is gone (or a zombie) within `seconds`: a signal is delivered async."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_servers_stopped_together_are_all_gone_with_their_children(monkeypatch):
    """Every group gets SIGTERM; one that ignores it is killed after STOP_SECONDS."""
    monkeypatch.setattr("ml_release.serving.server.STOP_SECONDS", 1.0)
    kinds = ["polite", "polite", "stubborn"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", STOPPABLE, kind], stdout=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        for kind in kinds
    ]  # fmt: skip
    children = [int(process.stdout.readline()) for process in processes]
    try:
        stop_processes(processes)
        assert [p.returncode for p in processes] == [
            -signal.SIGTERM,
            -signal.SIGTERM,
            -signal.SIGKILL,
        ]
        for pid in children:  # the whole group went, not only its leader
            assert _dies(pid), f"child {pid} of a stopped server is still running"
    finally:
        for process in processes:
            process.kill()
            process.wait()
            process.stdout.close()


class _Started:
    """What serve_group keeps of a started server: a real process, in its own group."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        self.load_seconds = 0.0


def _fake_starts(monkeypatch, failing: str = "", before=lambda role: None):
    started = {}

    def start(folder, store_root, workdir, options, name, version, digest=None):
        role = workdir.name
        before(role)
        if role == failing:
            raise ServingError(f"the model server for {name} {version} exited with code 1")
        workdir.mkdir(parents=True)
        started[role] = _Started()
        return started[role]

    monkeypatch.setattr("ml_release.serving.group.start_artifact", start)
    return started


PLAN = [
    ("candidate", ModelRef("v2", Path("v2"), "b" * 64)),
    ("production", ModelRef("v1", Path("v1"), "a" * 64)),
    ("replica", ModelRef("v1", Path("v1"), "a" * 64)),
]


def test_a_server_group_that_fails_to_start_stops_the_servers_it_started(monkeypatch, tmp_path):
    started = _fake_starts(monkeypatch, failing="replica")
    work = tmp_path / "work"
    with pytest.raises(ServerStartError, match="exited with code 1") as raised:
        with serve_group(PLAN, tmp_path, work, None, MODEL):
            pytest.fail("the block must not run when a server did not start")
    assert raised.value.role == "replica"
    assert sorted(started) == ["candidate", "production"]
    assert all(s.process.returncode == -signal.SIGTERM for s in started.values())
    assert not work.exists()


def test_a_server_group_stops_every_server_when_its_block_fails(monkeypatch, tmp_path):
    started = _fake_starts(monkeypatch)
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="measurement failed"):
        with serve_group(PLAN, tmp_path, work, None, MODEL) as servers:
            assert sorted(servers) == ["candidate", "production", "replica"]
            assert all(s.process.poll() is None for s in servers.values())
            raise RuntimeError("measurement failed")
    assert all(s.process.returncode == -signal.SIGTERM for s in started.values())
    assert not work.exists()


def test_a_server_group_starts_the_measured_server_alone_and_the_others_at_once(
    monkeypatch, tmp_path
):
    """The candidate's load time is judged: nothing starts beside it. Production and its
    replica start together (each waits for the other at a barrier: one after another, the
    first would wait in vain)."""
    together = threading.Barrier(2, timeout=30)
    order = []

    def before(role):
        order.append(role)
        if role != "candidate":
            assert "candidate" in started, "a server started beside the measured candidate"
            together.wait()

    started = _fake_starts(monkeypatch, before=before)
    with serve_group(PLAN, tmp_path, tmp_path / "work", None, MODEL, alone="candidate") as servers:
        assert sorted(servers) == ["candidate", "production", "replica"]
    assert order[0] == "candidate"
    assert all(s.process.returncode == -signal.SIGTERM for s in started.values())
