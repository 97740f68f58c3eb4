"""Helpers of the browser test: `dg dev` as a process group, GraphQL look-ups, Chromium.

`dg dev` (what `make ui` runs) starts `dagster dev`: a webserver, a daemon and code servers,
and the daemon starts run workers: all of them stay in the process group started here, so
stopping the group stops everything, also when the test fails half-way.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

from ml_release.serving.server import port_taken
from tests.servers import free_port, on_a_free_port

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no internet: background connections would only time out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TERMINAL_RUN_STATES = {"SUCCESS", "FAILURE", "CANCELED"}


def _reset_signals() -> None:
    # A shell that starts jobs in the background makes them ignore SIGINT; `dg dev`
    # would inherit that and never shut down its children. Start from the defaults.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


class DagsterDev:
    """`dg dev` (what `make ui` runs) on 127.0.0.1 in its own process group."""

    def __init__(self, project: Path, env: dict[str, str], log: Path) -> None:
        self.project, self.env, self.log_path = project, env, log
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")

    @property
    def url(self) -> str:
        """The webserver's address."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 360.0) -> None:
        """Start it and wait until the code location has loaded without error.

        The port was chosen free, then released: when another process took it before the
        webserver bound it (the webserver logs it and `dg dev` runs on without it), `dg dev` is
        stopped and started again on another port.
        """
        on_a_free_port(self, lambda: self._start(timeout), self.log_path)

    def _start(self, timeout: float) -> None:
        dg = Path(sys.executable).with_name("dg")
        since = self.log_path.stat().st_size
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(dg), "dev", "--host", "127.0.0.1", "--port", str(self.port)],  # as `make ui`
            cwd=self.project,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_reset_signals,  # before exec: a plain fork, no threads yet
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None or port_taken(self.log_path, since):
                self.stop()  # and its daemon
                raise RuntimeError(f"dg dev stopped early; see {self.log_path}")
            status = self._location_status()
            if status == "LOADED":
                return
            if status and status.startswith("error"):
                raise RuntimeError(f"the code location failed to load: {status}")
            time.sleep(1)
        raise TimeoutError(f"dg dev was not ready after {timeout:.0f} s; see {self.log_path}")

    def _location_status(self) -> str | None:
        query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
            locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        try:
            data = self.graphql(query)
        except (OSError, urllib.error.URLError, ValueError):
            return None  # the webserver is not up yet
        entries = data["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                return "error: " + loaded["message"]
            if entry["loadStatus"] == "LOADED" and loaded:
                return "LOADED"
        return None

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The `data` of a GraphQL query against the webserver."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        if body.get("errors"):
            raise ValueError(body["errors"])
        return body["data"]

    def runs(self) -> list[dict]:
        """The latest runs: id, status, job name and tags."""
        query = """{ runsOrError(limit: 20) { ... on Runs { results {
            runId status jobName tags { key value } } } } }"""
        results = self.graphql(query)["runsOrError"]["results"]
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in results]

    def wait_for_run(
        self, match: Callable[[dict], bool], timeout: float, finished: bool = True
    ) -> dict:
        """The first run `match` accepts, once it has finished (or once it exists)."""
        deadline = time.monotonic() + timeout
        seen: dict | None = None
        while time.monotonic() < deadline:
            seen = next((run for run in self.runs() if match(run)), None)
            if seen and (not finished or seen["status"] in TERMINAL_RUN_STATES):
                return seen
            time.sleep(2)
        raise TimeoutError(f"no finished run after {timeout:.0f} s (last seen: {seen})")

    def stop(self, grace: float = 20.0) -> list[str]:
        """Stop every process of the group; returns what had to be killed."""
        if self.process is None:
            return []
        pgid = self.process.pid
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dg dev stops its children
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        left = [p for p in psutil.process_iter(["pid", "cmdline"]) if _group(p) == pgid]
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=10)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()
        return [" ".join(p.info["cmdline"] or [])[:80] for p in left]

    def alive(self) -> list[int]:
        """Pids still in the process group (none after `stop`)."""
        if self.process is None:
            return []
        return [p.pid for p in psutil.process_iter(["pid"]) if _group(p) == self.process.pid]


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
