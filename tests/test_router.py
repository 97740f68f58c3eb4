"""The canary router against real MLServer processes: shares, stickiness, failures, cleanup.

Production serves a logistic regression with C=1 (version "prod"), the candidate the same
model with C=0.5 (version "cand"); every response names the version that answered it, so the
tests can tell which server really answered, not only what the router recorded.
"""

import asyncio
import gc
import http.client
import json
import math
import os
import signal
import socket
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest

from ml_release.artifacts import writer
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.model import build_pipeline
from ml_release.serving.client import V2Client, encode_request
from ml_release.serving.environment import runtime_python
from ml_release.serving.replay import replay
from ml_release.serving.router import LocalRouter, RouterError
from ml_release.serving.server import ServerOptions, free_ports, serve_artifact
from ml_release.serving.traffic import (
    BUCKETS,
    CANDIDATE,
    CONNECTION_ERROR,
    PRODUCTION,
    TIMEOUT,
    TrafficSplit,
    backend_for,
    request_bucket,
)
from ml_release.serving.upstream import Backend
from ml_release.store import store_artifact
from tests.conftest import RUNTIME_DIR

pytestmark = pytest.mark.slow

MODEL = "credit_default"
REQUESTS = 200


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo):
    """Production (C=1) and candidate (C=0.5) logistic regressions in one artifact store."""
    writer.current_code_version = lambda: None
    root = tmp_path_factory.mktemp("store")
    staging = root.parent / "staging"
    train = demo.training
    raw, y = train[list(REQUIRED_COLUMNS)], train["defaulted"].to_numpy()
    folders = {}
    for version, c in (("prod", 1.0), ("cand", 0.5)):
        pipeline = build_pipeline(
            "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": c}
        ).fit(raw, y)
        written = writer.write_artifact(
            pipeline, staging, name=MODEL, version=version, features=REQUIRED_COLUMNS
        )
        folders[version] = store_artifact(written, root, move=True)[1]
    return root, folders


@pytest.fixture(scope="module")
def bodies(demo):
    """Single-row V2 bodies of evaluation rows (no id in the body)."""
    rows = demo.evaluation[list(REQUIRED_COLUMNS)].head(REQUESTS)
    return [encode_request(rows.iloc[[i]], REQUIRED_COLUMNS) for i in range(len(rows))]


def _servers_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "ml_release.serving.launch" in cmdline and str(folder) in cmdline:
            found.append(process)
    return found


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture()
def pair(store, tmp_path):
    """Production and candidate servers for one test; none may be left afterwards."""
    root, folders = store
    options = ServerOptions(python=runtime_python(RUNTIME_DIR))
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:  # both start at once
        starting = [
            pool.submit(
                stack.enter_context,
                serve_artifact(folders[v], root, tmp_path / v, options, MODEL, v),
            )
            for v in ("prod", "cand")
        ]
        yield tuple(f.result() for f in starting)
    assert not _servers_in(tmp_path)


@pytest.fixture()
def make_router():
    """Routers started through this are checked to be gone (thread and port) after the test."""
    started = []

    def make(*args, **kwargs) -> LocalRouter:
        router = LocalRouter(*args, **kwargs)
        started.append(router)
        return router

    yield make
    for router in started:
        router.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ml-release-router")]


def _versions(results) -> list[str | None]:
    return [json.loads(r.body)["model_version"] if r.status == 200 else None for r in results]


def test_the_split_is_a_stable_monotone_hash_of_the_request_id():
    ids = [f"req-{i}" for i in range(20_000)]
    assert [request_bucket(i) for i in ids[:50]] == [request_bucket(i) for i in ids[:50]]
    assert all(0 <= request_bucket(i) < BUCKETS for i in ids)
    previous: set[str] = set()
    for weight in (0, 1, 5, 25, 50, 75, 99.99, 100):
        chosen = {i for i in ids if backend_for(i, weight) == CANDIDATE}
        assert previous <= chosen, f"raising the weight to {weight} moved ids back"
        sd = math.sqrt(len(ids) * weight / 100 * (1 - weight / 100))
        assert abs(len(chosen) - len(ids) * weight / 100) <= 4 * sd + 1, weight
        previous = chosen
    assert not any(backend_for(i, 0) == CANDIDATE for i in ids)
    assert all(backend_for(i, 100) == CANDIDATE for i in ids)
    with pytest.raises(ValueError, match="0 to 100"):
        LocalRouter(1, 2, MODEL, weight=101)
    assert issubclass(LocalRouter, TrafficSplit)


def test_the_router_stops_when_its_block_raises(make_router):
    ports = free_ports(2)
    router = make_router(*ports, MODEL)
    with pytest.raises(RuntimeError, match="boom"), router:
        port = router.port
        assert not _refused(port)
        raise RuntimeError("boom")
    assert _refused(port)
    with pytest.raises(RouterError, match="not running"):
        router.port  # noqa: B018
    # Backends that are not there: the caller gets a 502 from the router, not a hang.
    with router:
        client = V2Client(router.port)
        assert client.call("GET", "/v2/health/ready")[0] == 502
        client.close()


def test_weights_route_the_expected_shares_and_ids_stay_put(pair, bodies, make_router):
    prod, cand = pair
    ids = [f"logged-{i}" for i in range(len(bodies))]
    candidate_ids = {}
    with make_router(prod.port, cand.port, MODEL) as router:
        assert router.weight == 0
        for weight in (0, 25, 50, 100):
            router.set_weight(weight)
            marker = router.mark()
            results = replay(router.url, bodies, ids, concurrency=8, model=MODEL)
            records = router.records(since=marker)
            assert [r.status for r in results] == [200] * len(ids)
            assert sorted(r.request_id for r in records) == sorted(ids)
            by_id = {r.request_id: r.backend for r in records}
            # The server that really answered is the one the record names.
            answered = dict(zip(ids, _versions(results), strict=True))
            assert all(
                answered[i] == ("cand" if b == CANDIDATE else "prod") for i, b in by_id.items()
            )
            assert all(r.status == 200 and r.probabilities for r in records)
            candidate_ids[weight] = {i for i, b in by_id.items() if b == CANDIDATE}
            n, p = len(ids), weight / 100
            assert abs(len(candidate_ids[weight]) - n * p) <= 4 * math.sqrt(n * p * (1 - p))
        # Sticky: the same ids again at 25 % go where they went, and raising the weight only
        # ever moved ids from production to the candidate.
        router.set_weight(25)
        marker = router.mark()
        replay(router.port, bodies[:80], ids[:80], concurrency=4, model=MODEL)
        again = {r.request_id for r in router.records(since=marker) if r.backend == CANDIDATE}
        assert again == candidate_ids[25] & set(ids[:80])
    assert candidate_ids[0] == set() and candidate_ids[100] == set(ids)
    assert candidate_ids[0] <= candidate_ids[25] <= candidate_ids[50] <= candidate_ids[100]


def test_production_answers_pass_through_byte_for_byte(pair, bodies, make_router):
    prod, cand = pair
    with_ids = []
    for i, body in enumerate(bodies[:60]):
        request = json.loads(body)
        request["id"] = f"body-id-{i}"  # MLServer echoes it: identical requests, identical bytes
        with_ids.append(json.dumps(request).encode())
    direct = V2Client(prod.port)
    with make_router(prod.port, cand.port, MODEL, weight=50) as router:
        through = V2Client(router.port)
        routed = 0
        for i, body in enumerate(with_ids):
            expected = direct.infer(MODEL, body)
            got = through.infer(MODEL, body)
            assert expected[0] == 200
            if backend_for(f"body-id-{i}", 50) == PRODUCTION:  # the body's id routes here
                assert got[:2] == expected[:2]
                routed += 1
            else:
                assert got[0] == 200 and json.loads(got[1])["model_version"] == "cand"
        assert 10 < routed < 50
        for path in (f"/v2/models/{MODEL}", "/v2/health/ready", "/v2/models/nope/ready"):
            assert through.call("GET", path)[:2] == direct.call("GET", path)[:2]
        through.close()
        # The X-Request-Id header wins over the body's id; without it the body's id is used.
        connection = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
        for headers, expected_id in (
            ({"X-Request-Id": "header-id"}, "header-id"),
            ({}, "body-id-0"),
        ):
            connection.request("POST", f"/v2/models/{MODEL}/infer", with_ids[0], headers)
            assert connection.getresponse().read()
            assert router.records()[-1].request_id == expected_id
        connection.close()
    direct.close()


def test_killing_the_candidate_mid_replay_fails_no_caller(pair, bodies, make_router):
    prod, cand = pair
    ids = [f"kill-{i}" for i in range(len(bodies))]
    killed = []

    def kill_at_a_quarter(done: int, total: int) -> None:
        if done >= total // 4 and not killed:
            os.killpg(cand.process.pid, signal.SIGKILL)
            killed.append(done)

    with make_router(prod.port, cand.port, MODEL, weight=50, timeout_s=2.0) as router:
        results = replay(router.url, bodies, ids, 8, kill_at_a_quarter, model=MODEL)
        records = router.records()
    assert killed and cand.process.wait(5) == -signal.SIGKILL
    assert [r.status for r in results] == [200] * len(ids)  # fallback: every caller answered
    by_backend = Counter(r.backend for r in records)
    assert by_backend[PRODUCTION] + by_backend[CANDIDATE] == len(ids)
    production = [r for r in records if r.backend == PRODUCTION]
    assert all(r.status == 200 and r.fallback_status is None for r in production)
    candidate = [r for r in records if r.backend == CANDIDATE]
    served = [r for r in candidate if r.status == 200]
    failed = [r for r in candidate if r.error]
    assert served and failed and len(served) + len(failed) == len(candidate)
    assert {r.status for r in failed} == {CONNECTION_ERROR}
    assert all(r.fallback_status == 200 and r.probabilities is None for r in failed)
    # Answers of failed candidate requests came from production.
    versions = dict(zip(ids, _versions(results), strict=True))
    assert {versions[r.request_id] for r in failed} == {"prod"}


def test_a_hanging_candidate_is_recorded_as_timeouts(pair, bodies, make_router):
    prod, cand = pair
    ids = [f"hang-{i}" for i in range(24)]
    os.killpg(cand.process.pid, signal.SIGSTOP)
    try:
        with make_router(prod.port, cand.port, MODEL, weight=50, timeout_s=0.5) as router:
            results = replay(router.port, bodies[:24], ids, concurrency=8, model=MODEL)
            records = router.records()
            router.fallback = False
            marker = router.mark()
            unprotected = replay(router.port, bodies[:8], ids[:8], concurrency=8, model=MODEL)
            without_fallback = router.records(since=marker)
    finally:
        os.killpg(cand.process.pid, signal.SIGCONT)
    assert [r.status for r in results] == [200] * len(ids)
    candidate = [r for r in records if r.backend == CANDIDATE]
    assert candidate and all(r.status == TIMEOUT and r.error for r in candidate)
    assert all(r.latency_s >= 0.45 and r.fallback_status == 200 for r in candidate)
    assert all(r.status == 200 for r in records if r.backend == PRODUCTION)
    # Without fallback the caller sees the timeout as a 504 from the router.
    expected = {r.request_id: 504 if r.backend == CANDIDATE else 200 for r in without_fallback}
    assert {r.request_id: r.status for r in unprotected} == expected


def test_closing_a_backend_closes_its_kept_alive_connections_without_a_warning():
    """Idle upstream connections are aborted by `Backend.close`, none left for the collector."""

    async def scenario() -> list[warnings.WarningMessage]:
        hung_up = asyncio.Event()

        async def answer(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read()  # kept alive until the router closes it
            writer.close()
            hung_up.set()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        backend = Backend(server.sockets[0].getsockname()[1])
        answered = await backend.request(b"GET", b"/", [], b"")
        gc.collect()  # earlier tests' garbage (temporary folders...) warns outside the block
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            backend.close()
            gc.collect()
        await asyncio.wait_for(hung_up.wait(), 10)
        server.close()
        await server.wait_closed()
        assert answered.status == 200 and answered.body == b"ok"
        return caught

    caught = asyncio.run(scenario())
    unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert [message for message in unclosed if "unclosed" in message] == []
