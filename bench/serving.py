"""Serving benchmark: what the serving runtime adds to a model's latency and load time.

Measured in one run, against a temporary folder holding one stored artifact (the demo logistic
regression trained on 20,000 generated rows), with MLServer in the serving runtime's own
virtualenv:

- single-row latency through the runtime (`V2Client.infer`, HTTP/1.1 keep-alive on 127.0.0.1,
  bodies serialized before the clock starts) against the floor: `model.predict_proba(row)` in
  this process on the same rows; p50/p95/p99 of both and their ratio;
- load time: the server's process start to ready (`RunningServer.load_seconds`, median of
  `--loads` starts) against an in-process `skops.io.load` of the model file and against the
  project's safe loader `load_model` (digest, checks, skops);
- harness overhead: the same `V2Client.infer` loop against a trivial HTTP/1.1 keep-alive server
  (a separate process answering a canned response of the real response's size). Its latency
  bounds the measuring client's own share from above; target: under 5 % of the runtime's p50.
  `encode_request` is timed apart: it runs before the clock, so it is not in any latency;
- peak RSS of the server's process tree, for information.

Requests of the three latency loops are interleaved (runtime, trivial server, in-process floor,
in a rotating order), so a slow moment of the machine falls on all of them alike.

Usage: `.venv/bin/python bench/serving.py [--requests 500] [--warmup 50] [--loads 3] [--quick]`
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio

from ml_release.artifacts import writer
from ml_release.artifacts.manifest import MODEL_FILE
from ml_release.artifacts.skops_io import load_model
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate
from ml_release.model import build_pipeline
from ml_release.serving.client import V2Client, encode_request
from ml_release.serving.environment import RUNTIME_DIR_ENV, runtime_python
from ml_release.serving.server import RunningServer, ServerOptions, serve_artifact
from ml_release.store import store_artifact

PROJECT = Path(__file__).resolve().parents[1]
MODEL = "credit_default"
OVERHEAD_TARGET = 0.05  # the harness must add under 5 % to the latency it measures
IN_PROCESS_LOADS = 10

# A trivial HTTP/1.1 keep-alive server: reads the body, answers the canned bytes of the file
# given as argv[1] in one write (headers and body together, Nagle off), prints its port.
TRIVIAL_SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

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


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup(tmp: Path) -> tuple[Path, Path, str, pd.DataFrame]:
    """The demo logistic regression, stored; returns folder, store root, version, eval rows."""
    writer.current_code_version = lambda: None  # the setup must not shell out to git
    data = generate(seed=5, n_training=20000, n_evaluation=2000, n_serving=10)
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": 1.0}
    )
    model = pipeline.fit(data.training[list(REQUIRED_COLUMNS)], data.training["defaulted"])
    written = writer.write_artifact(
        model, tmp / "staging", name=MODEL, version="v1", features=REQUIRED_COLUMNS
    )
    root = tmp / "store"
    manifest, folder = store_artifact(written, root, move=True)
    return folder, root, manifest.version, data.evaluation[list(REQUIRED_COLUMNS)]


def timed(call: Callable, runs: int) -> list[float]:
    """Wall seconds of each of `runs` calls of `call()` in this process."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def start_trivial(tmp: Path, canned: bytes) -> tuple[subprocess.Popen, int]:
    """The trivial server in its own process group, and its port."""
    (tmp / "canned.json").write_bytes(canned)
    process = subprocess.Popen(
        [sys.executable, "-c", TRIVIAL_SERVER, str(tmp / "canned.json")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit(f"the trivial server did not start (printed {line!r})")
    except BaseException:  # Ctrl-C included: never leave it running
        stop_trivial(process)
        raise
    return process, int(line)


def stop_trivial(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout:
        process.stdout.close()


def latencies(
    server: RunningServer,
    trivial_port: int,
    model,
    bodies: list[bytes],
    frames: list[pd.DataFrame],
    warmup: int,
) -> dict[str, list[float]]:
    """Seconds per single-row request: runtime, trivial server, in-process floor, interleaved."""
    runtime, trivial = V2Client(server.port), V2Client(trivial_port)
    out: dict[str, list[float]] = {"runtime": [], "trivial": [], "floor": []}

    def run_runtime(i: int) -> float:
        status, content, seconds = runtime.infer(MODEL, bodies[i])
        if status != 200:
            raise SystemExit(f"the runtime answered HTTP {status}: {content[:300]!r}")
        return seconds

    def run_trivial(i: int) -> float:
        status, content, seconds = trivial.infer(MODEL, bodies[i])
        if status != 200:
            raise SystemExit(f"the trivial server answered HTTP {status}: {content[:300]!r}")
        return seconds

    def run_floor(i: int) -> float:
        started = time.perf_counter()
        model.predict_proba(frames[i])
        return time.perf_counter() - started

    loops = {"runtime": run_runtime, "trivial": run_trivial, "floor": run_floor}
    order = list(loops)
    try:
        for step in range(warmup):
            for name in order:
                loops[name](step % len(bodies))
        for step in range(len(bodies)):
            shift = step % len(order)
            for name in order[shift:] + order[:shift]:
                out[name].append(loops[name](step))
    finally:
        runtime.close()
        trivial.close()
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed single-row requests")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests first")
    parser.add_argument("--loads", type=int, default=3, help="server starts (median load time)")
    parser.add_argument("--quick", action="store_true", help="50 requests, 10 warm-up, 1 load")
    args = parser.parse_args()
    if min(args.requests, args.loads) < 1 or args.warmup < 0:
        parser.error("--requests and --loads must be at least 1, --warmup at least 0")
    if args.quick:
        args.requests, args.warmup, args.loads = 50, 10, 1
    in_process_loads = 3 if args.quick else IN_PROCESS_LOADS
    os.environ.setdefault(RUNTIME_DIR_ENV, str(PROJECT / ".ml_release" / "runtime"))
    python = runtime_python(progress=progress)
    options = ServerOptions(python=python)
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    trivial_process = None
    try:
        progress("training the demo logistic regression on 20,000 rows")
        folder, root, version, rows = setup(tmp)
        if args.requests > len(rows):
            raise SystemExit(f"--requests at most {len(rows)} (evaluation rows)")
        frames = [rows.iloc[[i]] for i in range(args.requests)]
        bodies, encode_seconds = [], []
        for frame in frames:
            started = time.perf_counter()
            bodies.append(encode_request(frame, REQUIRED_COLUMNS))
            encode_seconds.append(time.perf_counter() - started)

        model_file = folder / MODEL_FILE
        trusted = sio.get_untrusted_types(file=model_file)
        sio.load(model_file, trusted=trusted)  # warm-up, untimed
        raw_loads = timed(lambda: sio.load(model_file, trusted=trusted), in_process_loads)
        load_model(folder, root)  # warm-up, untimed
        safe_loads = timed(lambda: load_model(folder, root), in_process_loads)
        model = load_model(folder, root)

        server_loads, rss_mib, measured = [], float("nan"), {}
        for start in range(args.loads):
            work = tmp / f"server-{start}"
            with serve_artifact(folder, root, work, options, MODEL, version) as server:
                server_loads.append(server.load_seconds)
                progress(
                    f"server start {start + 1}/{args.loads}: ready in {server.load_seconds:.2f} s"
                )
                if start == 0:
                    probe = V2Client(server.port)  # a real response: the canned answer
                    status, canned, _ = probe.infer(MODEL, bodies[0])
                    probe.close()
                    if status != 200:
                        raise SystemExit(f"the runtime answered HTTP {status}: {canned[:300]!r}")
                    trivial_process, trivial_port = start_trivial(tmp, canned)
                    progress(
                        f"{args.warmup} warm-up + {args.requests} timed single-row requests "
                        "(runtime, trivial server, in-process floor, interleaved)"
                    )
                    measured = latencies(server, trivial_port, model, bodies, frames, args.warmup)
                    rss_mib = server.peak_rss_bytes() / 1024**2
                    stop_trivial(trivial_process)
                    trivial_process = None
    finally:
        if trivial_process is not None:
            stop_trivial(trivial_process)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    request_bytes = round(statistics.mean(len(b) for b in bodies))
    report(
        args,
        measured,
        server_loads,
        raw_loads,
        safe_loads,
        encode_seconds,
        rss_mib,
        canned,
        request_bytes,
    )


def report(
    args,
    measured,
    server_loads,
    raw_loads,
    safe_loads,
    encode_seconds,
    rss_mib,
    canned,
    request_bytes,
):
    """Print the latency percentiles, the load times and the harness overhead."""
    ms = {name: [s * 1000 for s in values] for name, values in measured.items()}
    print(
        f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.requests} "
        f"single-row requests after {args.warmup} warm-up; V2 request ~{request_bytes} bytes, "
        f"response {len(canned)} bytes"
    )
    names = {
        "runtime": "runtime: V2Client.infer -> MLServer (HTTP + JSON + predict_proba)",
        "floor": "floor: predict_proba(1 row) in-process",
        "trivial": "harness: V2Client.infer -> trivial HTTP server",
    }
    print("\n| single-row latency | n | p50 ms | p95 ms | p99 ms | mean ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in ("runtime", "floor", "trivial"):
        v = ms[key]
        print(
            f"| {names[key]} | {len(v)} | {pct(v, 50):.3f} | {pct(v, 95):.3f} "
            f"| {pct(v, 99):.3f} | {statistics.mean(v):.3f} |"
        )

    runtime, floor, trivial = ms["runtime"], ms["floor"], ms["trivial"]
    overhead = pct(trivial, 50) / pct(runtime, 50)
    server_load = statistics.median(server_loads)
    raw_load, safe_load = statistics.median(raw_loads), statistics.median(safe_loads)
    encode_ms = statistics.median(encode_seconds) * 1000
    rows = [
        (
            "latency p50: runtime vs in-process predict_proba",
            f"{pct(runtime, 50):.3f} ms",
            f"{pct(floor, 50):.3f} ms",
            f"{pct(runtime, 50) / pct(floor, 50):.2f}x",
            "",
            "",
        ),
        (
            "latency p95: runtime vs in-process predict_proba",
            f"{pct(runtime, 95):.3f} ms",
            f"{pct(floor, 95):.3f} ms",
            f"{pct(runtime, 95) / pct(floor, 95):.2f}x",
            "",
            "",
        ),
        (
            "latency p99: runtime vs in-process predict_proba",
            f"{pct(runtime, 99):.3f} ms",
            f"{pct(floor, 99):.3f} ms",
            f"{pct(runtime, 99) / pct(floor, 99):.2f}x",
            "",
            "",
        ),
        (
            "runtime p50 minus floor p50 (HTTP + JSON + MLServer)",
            f"{pct(runtime, 50) - pct(floor, 50):.3f} ms",
            "",
            "",
            "",
            "",
        ),
        (
            f"load: server process start to ready (median of {len(server_loads)})",
            f"{server_load:.2f} s",
            f"{raw_load * 1000:.1f} ms skops.io.load",
            f"{server_load / raw_load:.0f}x",
            "",
            "",
        ),
        (
            f"load: server start vs load_model (safe loader, median of {len(safe_loads)})",
            f"{server_load:.2f} s",
            f"{safe_load * 1000:.1f} ms load_model",
            f"{server_load / safe_load:.0f}x",
            "",
            "",
        ),
        (
            "load: load_model vs skops.io.load (checks' cost in-process)",
            f"{safe_load * 1000:.1f} ms",
            f"{raw_load * 1000:.1f} ms",
            f"{safe_load / raw_load:.2f}x",
            "",
            "",
        ),
        (
            "harness overhead: trivial-server p50 / runtime p50",
            f"{pct(trivial, 50):.3f} ms",
            f"{pct(runtime, 50):.3f} ms",
            f"{overhead:.1%}",
            f"< {OVERHEAD_TARGET:.0%}",
            "PASS" if overhead < OVERHEAD_TARGET else "FAIL",
        ),
        (
            "trivial p99 / runtime p99 (tails do not add up; information)",
            f"{pct(trivial, 99):.3f} ms",
            f"{pct(runtime, 99):.3f} ms",
            f"{pct(trivial, 99) / pct(runtime, 99):.1%}",
            "",
            "",
        ),
        (
            "encode_request per body, median (before the clock: not in any latency)",
            f"{encode_ms:.3f} ms",
            f"{pct(runtime, 50):.3f} ms runtime p50",
            f"{encode_ms / pct(runtime, 50):.1%}",
            "",
            "",
        ),
        ("server peak RSS, process tree", f"{rss_mib:.0f} MiB", "", "", "", ""),
    ]
    print("\n| measurement | value | baseline | ratio | target | met |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
