"""Replay benchmark: what the canary router adds to latency, and how fast logged traffic replays.

Measured in one run, against a temporary folder holding two stored artifacts (the demo logistic
regression trained on 20,000 generated rows with C=1 as production and C=0.5 as candidate),
each served by MLServer in the serving runtime's own virtualenv, plus two trivial HTTP servers:

- (a) floor: single-row requests straight to the production server (`V2Client.infer`,
  HTTP/1.1 keep-alive on 127.0.0.1, bodies serialized before the clock starts): p50/p99 and
  sequential throughput;
- (b) the same requests through `LocalRouter` at weight 0 % (all to production) and at 50 %;
  the floor of the 50 % router is the same request sent straight to the server the router
  picks for its id. Added median latency = router p50 - floor p50; target: under 1 ms. The same
  pair of loops against trivial servers (a canned answer, no model) shows the router's cost
  without the model's noise. All loops are interleaved in a rotating order;
- (c) replay of `--requests` (10,000) logged-style requests (demo evaluation rows as single-row
  V2 bodies, each with its id in `X-Request-Id`) through the router at 50 % to the two servers
  with `replay(concurrency=8)`: total seconds (target: under 20 s) and requests per second.
  Its floor: the same requests at the same concurrency sent by the client straight to the
  server the router would pick (same hash), no router; the two replays alternate in chunks.
  The same replay through the router to the trivial servers gives the router's own capacity;
- (d) the shadow replay (`ml_release.shadow.replay.replay`, as `shadow_report` runs it) of the
  same requests to candidate and production, in batches of 32 plus 300 timed single
  requests: total seconds (target: under 20 s per 10,000), against (c)'s floor.

Usage: `.venv/bin/python bench/replay.py [--requests 10000] [--latency-requests 500] [--quick]`
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, suppress
from pathlib import Path

import numpy as np
import psutil

from ml_release.artifacts import writer
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.model import build_pipeline
from ml_release.serving.client import V2Client, encode_request
from ml_release.serving.environment import RUNTIME_DIR_ENV, runtime_python
from ml_release.serving.replay import replay
from ml_release.serving.router import LocalRouter
from ml_release.serving.server import ServerOptions, serve_artifact
from ml_release.serving.traffic import CANDIDATE, PRODUCTION, REQUEST_ID_HEADER, backend_for
from ml_release.shadow.replay import LoggedRequests
from ml_release.shadow.replay import replay as shadow_replay
from ml_release.store import store_artifact

PROJECT = Path(__file__).resolve().parents[1]
MODEL = "credit_default"
ADDED_MEDIAN_TARGET_MS = 1.0
REPLAY_TARGET_S = 20.0
SPLIT = 50.0
REPLAY_CHUNKS = 4  # the floor and the router replays alternate chunk by chunk
SHADOW_BATCH, SHADOW_TIMED = 32, 300  # the shadow spec's defaults

# A trivial HTTP/1.1 keep-alive server, a thread per connection (the router and the direct
# client each hold their own): reads the body, answers the canned bytes of argv[1].
TRIVIAL_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANNED = open(sys.argv[1], "rb").read()
HEAD = (
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(CANNED)}\r\n\r\n"
).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(HEAD + CANNED)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup(tmp: Path, rows_needed: int):
    """Production (C=1) and candidate (C=0.5), stored; returns folders, store root, eval rows."""
    writer.current_code_version = lambda: None  # the setup must not shell out to git
    data = generate(seed=5, n_training=20000, n_evaluation=rows_needed, n_serving=10)
    raw, y = data.training[list(REQUIRED_COLUMNS)], data.training["defaulted"]
    root, folders = tmp / "store", {}
    for version, c in (("prod", 1.0), ("cand", 0.5)):
        pipeline = build_pipeline(
            "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": c}
        )
        written = writer.write_artifact(
            pipeline.fit(raw, y),
            tmp / "staging",
            name=MODEL,
            version=version,
            features=REQUIRED_COLUMNS,
        )
        folders[version] = store_artifact(written, root, move=True)[1]
    return folders, root, data.evaluation[list(REQUIRED_COLUMNS)]


class Trivial:
    """A trivial server process in its own process group; always killed on exit."""

    def __init__(self, canned: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", TRIVIAL_SERVER, str(canned)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            line = self.process.stdout.readline()
            if not line.strip().isdigit():
                raise SystemExit(f"the trivial server did not start (printed {line!r})")
        except BaseException:
            self.close()
            raise
        self.port = int(line)

    def __enter__(self) -> "Trivial":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def latencies(clients: dict, bodies: list[bytes], ids: list[str], warmup: int) -> dict:
    """Seconds per single-row request of every loop, interleaved in a rotating order.

    `clients` maps a loop name to a V2Client, or to a dict backend -> V2Client for a floor
    that sends each request straight to the backend the 50 % router picks for its id.
    """
    out: dict[str, list[float]] = {name: [] for name in clients}

    def run(name: str, i: int) -> float:
        client = clients[name]
        if isinstance(client, dict):
            client = client[backend_for(ids[i], SPLIT)]
        status, content, seconds = client.infer(MODEL, bodies[i])
        if status != 200:
            raise SystemExit(f"{name} answered HTTP {status}: {content[:300]!r}")
        return seconds

    order = list(clients)
    for step in range(warmup):
        for name in order:
            run(name, step % len(bodies))
    for step in range(len(bodies)):
        shift = step % len(order)
        for name in order[shift:] + order[:shift]:
            out[name].append(run(name, step))
    return out


def split_replay(ports: dict[str, int], bodies, ids, concurrency: int) -> tuple:
    """The floor of a replay: the client sends each request straight to its backend.

    Same order, same concurrency, same hash as the router; returns (total s, statuses, s each).
    """
    total, lock, state = len(bodies), threading.Lock(), {"next": 0}
    statuses: list = [None] * total
    seconds: list = [0.0] * total
    path = f"/v2/models/{MODEL}/infer"

    def work() -> None:
        connections = {
            name: http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for name, port in ports.items()
        }
        try:
            while True:
                with lock:
                    index = state["next"]
                    if index >= total:
                        return
                    state["next"] = index + 1
                connection = connections[backend_for(ids[index], SPLIT)]
                headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: ids[index]}
                started = time.perf_counter()
                connection.request("POST", path, bodies[index], headers)
                response = connection.getresponse()
                response.read()
                seconds[index] = time.perf_counter() - started
                statuses[index] = response.status
        finally:
            for connection in connections.values():
                connection.close()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, statuses, seconds


def timed_replay(router: LocalRouter, bodies, ids, concurrency: int) -> tuple:
    """Replay through the router; returns (total s, statuses, s each)."""
    started = time.perf_counter()
    results = replay(router.url, bodies, ids, concurrency, model=MODEL)
    seconds = time.perf_counter() - started
    return seconds, [r.status for r in results], [r.seconds for r in results]


def timed_shadow_replay(servers: dict, rows, ids: list[str], concurrency: int) -> tuple:
    """Seconds, both servers' answers, and the CPU of the servers and of this process."""
    n = len(ids)
    logged = LoggedRequests(
        ids, rows.iloc[:n].reset_index(drop=True), *(np.full(n, np.nan) for _ in range(3))
    )
    pids = [server.process.pid for server in servers.values()]
    servers_before, own_before = cpu_seconds(pids)
    started = time.perf_counter()
    answers = shadow_replay(
        {CANDIDATE: servers[CANDIDATE], PRODUCTION: servers[PRODUCTION]},
        logged,
        dict(REQUIRED_COLUMNS),
        concurrency,
        30.0,
        batch_size=SHADOW_BATCH,
        latency_requests=SHADOW_TIMED,
    )
    seconds = time.perf_counter() - started
    servers_after, own_after = cpu_seconds(pids)
    return seconds, answers, servers_after - servers_before, own_after - own_before


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the servers' process trees, and by this
    process (the replay's client threads and the router's thread)."""
    servers = 0.0
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                with suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    servers += times.user + times.system
    own = resource.getrusage(resource.RUSAGE_SELF)
    return servers, own.ru_utime + own.ru_stime


def alternate(floor, measured, bodies, ids, pids: list[int]) -> tuple:
    """Both replays over the same requests, chunk by chunk, alternating which runs first.

    A slow moment of the machine then falls on both alike. Returns, for each of the two,
    (total s, statuses, s each, servers' CPU s, this process's CPU s), summed over the chunks.
    """
    totals = ([0.0, [], [], 0.0, 0.0], [0.0, [], [], 0.0, 0.0])
    size = -(-len(bodies) // REPLAY_CHUNKS)
    for chunk, start in enumerate(range(0, len(bodies), size)):
        part = (bodies[start : start + size], ids[start : start + size])
        order = (0, 1) if chunk % 2 == 0 else (1, 0)
        for which in order:
            servers_before, own_before = cpu_seconds(pids)
            seconds, statuses, each = (floor, measured)[which](*part)
            servers_after, own_after = cpu_seconds(pids)
            totals[which][0] += seconds
            totals[which][1].extend(statuses)
            totals[which][2].extend(each)
            totals[which][3] += servers_after - servers_before
            totals[which][4] += own_after - own_before
        progress(
            f"  {start + len(part[0])}/{len(bodies)}: floor {totals[0][0]:.1f} s, "
            f"router {totals[1][0]:.1f} s"
        )
    return tuple(tuple(t) for t in totals)


def pct(values, q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="replayed requests (c)")
    parser.add_argument(
        "--latency-requests", type=int, default=500, help="timed single-row requests (a, b)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per loop first")
    parser.add_argument("--concurrency", type=int, default=8, help="replay concurrency")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 replayed, 100 timed, 10 warm-up requests"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.latency_requests, args.warmup = 1000, 100, 10
    if min(args.requests, args.latency_requests, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--requests, --latency-requests and --concurrency at least 1, --warmup 0")
    os.environ.setdefault(RUNTIME_DIR_ENV, str(PROJECT / ".ml_release" / "runtime"))
    options = ServerOptions(python=runtime_python(progress=progress))
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        progress("training production (C=1) and candidate (C=0.5) on 20,000 rows")
        folders, root, rows = setup(tmp, max(args.requests, args.latency_requests))
        progress(f"encoding {args.requests} single-row V2 bodies (before any clock)")
        bodies = [encode_request(rows.iloc[[i]], REQUIRED_COLUMNS) for i in range(args.requests)]
        ids = [f"log-{i:06d}" for i in range(args.requests)]
        latency_ids = [f"lat-{i:06d}" for i in range(args.latency_requests)]
        latency_bodies = []  # V2 bodies carrying their id, as a V2 client sends them
        for i, request_id in enumerate(latency_ids):
            request = json.loads(encode_request(rows.iloc[[i]], REQUIRED_COLUMNS))
            request["id"] = request_id
            latency_bodies.append(json.dumps(request).encode())

        with ExitStack() as stack:
            servers = {
                name: stack.enter_context(
                    serve_artifact(folders[v], root, tmp / v, options, MODEL, v)
                )
                for name, v in ((PRODUCTION, "prod"), (CANDIDATE, "cand"))
            }
            ports = {name: s.port for name, s in servers.items()}
            probe = V2Client(ports[PRODUCTION])
            status, canned, _ = probe.infer(MODEL, latency_bodies[0])
            probe.close()
            if status != 200:
                raise SystemExit(f"production answered HTTP {status}: {canned[:300]!r}")
            (tmp / "canned.json").write_bytes(canned)
            trivial = {
                name: stack.enter_context(Trivial(tmp / "canned.json")).port
                for name in (PRODUCTION, CANDIDATE)
            }

            def router(backends: dict[str, int], weight: float) -> LocalRouter:
                return stack.enter_context(
                    LocalRouter(backends[PRODUCTION], backends[CANDIDATE], MODEL, weight=weight)
                )

            routers = {
                "router0": router(ports, 0),
                "router50": router(ports, SPLIT),
                "trivial_router": router(trivial, 0),
            }
            clients = {
                "direct": V2Client(ports[PRODUCTION]),
                "router0": V2Client(routers["router0"].port),
                "split": {name: V2Client(port) for name, port in ports.items()},
                "router50": V2Client(routers["router50"].port),
                "trivial": V2Client(trivial[PRODUCTION]),
                "trivial_router": V2Client(routers["trivial_router"].port),
            }
            progress(
                f"{args.warmup} warm-up + {args.latency_requests} timed single-row requests "
                f"per loop ({', '.join(clients)}; interleaved)"
            )
            measured = latencies(clients, latency_bodies, latency_ids, args.warmup)

            progress(
                f"replaying {args.requests} requests at concurrency {args.concurrency}, in "
                f"{REPLAY_CHUNKS} chunks alternating the floor and the router"
            )
            replay_router, trivial_router = routers["router50"], routers["trivial_router"]
            marker = replay_router.mark()
            floor, routed = alternate(
                lambda b, i: split_replay(ports, b, i, args.concurrency),
                lambda b, i: timed_replay(replay_router, b, i, args.concurrency),
                bodies,
                ids,
                [server.process.pid for server in servers.values()],
            )
            replays = {"floor": floor, "router": routed}
            records = replay_router.records(since=marker)
            trivial_router.set_weight(SPLIT)
            progress("the same replay through the router to the trivial servers (capacity)")
            replays["trivial_router"] = timed_replay(trivial_router, bodies, ids, args.concurrency)
            progress(
                f"(d) shadow replay of the {args.requests} requests to candidate and production "
                f"(batches of {SHADOW_BATCH}, {SHADOW_TIMED} timed single requests)"
            )
            replays["shadow"] = timed_shadow_replay(servers, rows, ids, args.concurrency)
            for client in clients.values():
                for c in client.values() if isinstance(client, dict) else [client]:
                    c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    report(args, measured, replays, records, load_before)


def report(args, measured, replays, records, load_before) -> None:
    """Print the latency table, the replay table and the targets."""
    ms = {name: [s * 1000 for s in values] for name, values in measured.items()}
    print(
        f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average before "
        f"{load_before:.2f}; {args.latency_requests} single-row requests per loop after "
        f"{args.warmup} warm-up; replay of {args.requests} at concurrency {args.concurrency}"
    )
    names = {
        "direct": "(a) floor: V2Client -> production MLServer",
        "router0": "(b) V2Client -> router at 0 % -> production",
        "split": "floor of 50 %: V2Client -> the server the router picks",
        "router50": "(b) V2Client -> router at 50 % -> production or candidate",
        "trivial": "harness: V2Client -> trivial server",
        "trivial_router": "harness: V2Client -> router at 0 % -> trivial server",
    }
    print("\n| single-row latency, sequential | n | p50 ms | p99 ms | mean ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, label in names.items():
        v = ms[key]
        print(
            f"| {label} | {len(v)} | {pct(v, 50):.3f} | {pct(v, 99):.3f} "
            f"| {statistics.mean(v):.3f} | {1000 / statistics.mean(v):.1f} |"
        )

    print("\n| replay | requests | total s | req/s | p50 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    labels = {
        "floor": "(c) floor: client-side split straight to the servers",
        "router": "(c) through the router at 50 %",
        "trivial_router": "capacity: router at 50 % to trivial servers",
    }
    for key, label in labels.items():
        seconds, statuses, latencies_s = replays[key][:3]
        lat = [s * 1000 for s in latencies_s]
        failed = sum(1 for s in statuses if s != 200)
        print(
            f"| {label} | {len(statuses)} | {seconds:.2f} | {len(statuses) / seconds:.1f} "
            f"| {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {failed} |"
        )
    served = Counter((r.backend, r.status) for r in records)
    print(
        "\nrouter records of the replay: "
        + ", ".join(f"{b} {s}: {n}" for (b, s), n in sorted(served.items(), key=str))
    )

    def added(key: str, floor: str) -> float:
        return pct(ms[key], 50) - pct(ms[floor], 50)

    def paired(key: str, floor: str) -> float:
        return statistics.median(np.subtract(ms[key], ms[floor]))

    rows = []
    for key, floor, what in (
        ("router0", "direct", "router 0 % - direct"),
        ("router50", "split", "router 50 % - direct to the picked server"),
        ("trivial_router", "trivial", "router - trivial server (no model)"),
    ):
        value = added(key, floor)
        rows.append(
            (
                f"added p50: {what}",
                f"{value:.3f} ms",
                f"{pct(ms[floor], 50):.3f} ms",
                f"{pct(ms[key], 50) / pct(ms[floor], 50):.3f}x",
                f"< {ADDED_MEDIAN_TARGET_MS:g} ms",
                "PASS" if value < ADDED_MEDIAN_TARGET_MS else "FAIL",
            )
        )
        rows.append(
            (
                f"median of paired differences: {what}",
                f"{paired(key, floor):.3f} ms",
                "",
                "",
                "",
                "",
            )
        )
    for key, floor, label in (
        ("router0", "direct", "p99: router 0 % vs direct"),
        ("router50", "split", "p99: router 50 % vs direct to the picked server"),
    ):
        rows.append(
            (
                label,
                f"{pct(ms[key], 99):.3f} ms",
                f"{pct(ms[floor], 99):.3f} ms",
                f"{pct(ms[key], 99) / pct(ms[floor], 99):.2f}x",
                "",
                "",
            )
        )
    replay_s, floor_s = replays["router"][0], replays["floor"][0]
    scaled = replay_s * 10_000 / args.requests
    rows.append(
        (
            f"(c) replay of {args.requests} through the router at 50 %, total",
            f"{replay_s:.2f} s",
            f"{floor_s:.2f} s floor",
            f"{replay_s / floor_s:.2f}x",
            f"< {REPLAY_TARGET_S:g} s per 10,000",
            ("PASS" if scaled < REPLAY_TARGET_S else "FAIL")
            + ("" if args.requests == 10_000 else f" ({scaled:.1f} s per 10,000)"),
        )
    )
    rows.append(
        (
            "(c) replay throughput, router vs floor",
            f"{args.requests / replay_s:.1f} req/s",
            f"{args.requests / floor_s:.1f} req/s",
            f"{floor_s / replay_s:.2f}x",
            "",
            "",
        )
    )
    cores = os.cpu_count() or 1
    for key, label in (("floor", "floor"), ("router", "router")):
        servers_cpu, own_cpu = replays[key][3], replays[key][4]
        per_request = (servers_cpu + own_cpu) / args.requests
        rows.append(
            (
                f"(c) {label}: CPU per request, servers + this process (client, router)",
                f"{per_request * 1000:.2f} ms",
                f"{servers_cpu / args.requests * 1000:.2f} + "
                f"{own_cpu / args.requests * 1000:.2f} ms",
                "",
                "",
                f"bound on {cores} cores: {per_request * 10_000 / cores:.1f} s per 10,000",
            )
        )
    trivial_s = replays["trivial_router"][0]
    rows.append(
        (
            "router capacity: the replay through the router to trivial servers",
            f"{args.requests / trivial_s:.0f} req/s",
            f"{trivial_s:.2f} s total",
            "",
            "",
            "",
        )
    )
    shadow_s, answers, servers_cpu, own_cpu = replays["shadow"]
    scaled = shadow_s * 10_000 / args.requests
    errors = {role: a.error_count for role, a in answers.items()}
    rows.append(
        (
            f"(d) shadow replay of {args.requests} to candidate and production, batches of "
            f"{SHADOW_BATCH} + {SHADOW_TIMED} timed singles, total",
            f"{shadow_s:.2f} s",
            f"{floor_s:.2f} s floor (c)",
            f"{shadow_s / floor_s:.2f}x",
            f"< {REPLAY_TARGET_S:g} s per 10,000",
            ("PASS" if scaled < REPLAY_TARGET_S and not any(errors.values()) else "FAIL")
            + ("" if args.requests == 10_000 else f" ({scaled:.1f} s per 10,000)"),
        )
    )
    rows.append(
        (
            "(d) shadow replay: logged requests per second, CPU per logged request "
            "(servers + this process), errors",
            f"{args.requests / shadow_s:.1f} req/s",
            f"{(servers_cpu + own_cpu) / args.requests * 1000:.2f} ms",
            "",
            "",
            ", ".join(f"{role} {n}" for role, n in errors.items()),
        )
    )
    failed = sum(1 for s in replays["router"][1] if s != 200)
    production_failed = sum(1 for r in records if r.backend == PRODUCTION and r.status != 200)
    rows.append(
        (
            "failed requests: to the caller / on the production path",
            f"{failed} / {production_failed}",
            "",
            "",
            "0 / 0",
            "PASS" if failed == production_failed == 0 else "FAIL",
        )
    )
    print("\n| measurement | value | baseline | ratio | target | met |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
