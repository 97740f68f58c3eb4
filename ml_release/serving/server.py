"""One artifact served by MLServer in its own process: start, wait for ready, always stop.

`serve_artifact` is a context manager: the server process (in its own process group, on free
127.0.0.1 ports) is stopped when the block ends, however it ends — an exception, a failed test,
a cancelled Dagster run. The server also stops itself when its parent process disappears.
`start_artifact` starts one for a caller that stops it (`serving.group.serve_group`).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from ml_release.errors import ReleaseError

IMPLEMENTATION = "ml_release.serving.runtime.SkopsRuntime"
STOP_SECONDS = 5.0
_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class ServingError(ReleaseError):
    """A model server did not start, or stopped answering."""


class PortTaken(ServingError):
    """A port chosen free was taken by another process before the server could bind it."""


@dataclass(frozen=True)
class ServerOptions:
    """How a model server runs."""

    python: Path
    ready_timeout: float = 120.0
    max_request_bytes: int = 64 * 1024**2
    max_rows: int = 10_000
    extra_paths: tuple[Path, ...] = ()
    trusted_types: tuple[str, ...] = ()  # the spec's `trusted_types:`, for the safe loader


@dataclass
class RunningServer:
    """A model server that answered ready."""

    name: str
    version: str
    port: int
    metrics_port: int
    process: subprocess.Popen
    folder: Path
    load_seconds: float

    @property
    def url(self) -> str:
        """Base URL of the V2 REST API."""
        return f"http://127.0.0.1:{self.port}"

    def rss_bytes(self) -> int:
        """Resident memory of the server's process tree now."""
        return sum(_tree_values(self.process.pid, lambda p: p.memory_info().rss))

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the process tree so far (VmHWM where Linux reports it)."""
        return sum(_tree_values(self.process.pid, _peak_rss))

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return _tail(self.folder / "server.log", chars)


def _peak_rss(process: psutil.Process) -> int:
    with suppress(OSError, ValueError):
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return process.memory_info().rss


def _tree_values(pid: int, value) -> list[int]:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for process in processes:
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            out.append(value(process))
    return out


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (free now; a race is retried by the caller)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_settings(
    folder: Path,
    name: str,
    version: str,
    artifact: Path,
    store_root: Path,
    ports: list[int],
    max_rows: int,
    digest: str | None = None,
    trusted_types: tuple[str, ...] = (),
) -> None:
    """MLServer's settings.json and the model's model-settings.json in `folder`.

    `digest` is the registry's digest of the artifact: the runtime refuses to load bytes that
    do not have it.
    """
    http_port, grpc_port, metrics_port = ports
    settings = {
        "host": "127.0.0.1",  # MLServer's default is 0.0.0.0: never expose a release check
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "debug": False,
        "gzip_enabled": False,
        "load_models_at_startup": True,
        "metrics_dir": str(folder / "metrics"),
        "environments_dir": str(folder / "envs"),
    }
    model = {
        "name": name,
        "implementation": IMPLEMENTATION,
        "parameters": {
            # No MLServer version: a reload replaces the model in place (the artifact's version
            # is in every response's model_version and in the metadata).
            "uri": str(artifact),
            "extra": {
                "store_root": str(store_root),
                "max_rows": max_rows,
                "sha256": digest,
                "trusted_types": list(trusted_types),
            },
        },
    }
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / name / "model-settings.json").write_text(json.dumps(model, indent=2))


def _environment(options: ServerOptions) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and not k.startswith("MLSERVER")
    }
    # One inference thread per server: OpenMP (scikit-learn's boosting and forests) spinning on
    # a busy machine turns a 20 ms answer into a second. Set it in the environment to override.
    env.setdefault("OMP_NUM_THREADS", "1")
    if options.extra_paths:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in options.extra_paths)
    return env


def _status(port: int, path: str, timeout: float = 2.0) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it after STOP_SECONDS; idempotent."""
    stop_processes([process])


def stop_processes(processes: Iterable[subprocess.Popen]) -> None:
    """Stop several servers at once: every group gets SIGTERM, then SIGKILL after STOP_SECONDS.

    A server takes most of a second to shut down; stopped one after another, the three of a
    serving measurement cost that three times.
    """
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers in the group, if any
        process.wait()


def _start(
    folder: Path,
    name: str,
    version: str,
    artifact: Path,
    store_root: Path,
    options: ServerOptions,
    ports: tuple[int, int] | None,
    digest: str | None = None,
) -> RunningServer:
    grpc = free_ports(1)[0]
    ports = [ports[0], grpc, ports[1]] if ports else free_ports(3)
    write_settings(
        folder,
        name,
        version,
        artifact,
        store_root,
        ports,
        options.max_rows,
        digest,
        options.trusted_types,
    )
    command = [
        str(options.python),
        "-m",
        "ml_release.serving.launch",
        str(folder),
        "--parent-pid",
        str(os.getpid()),
        "--max-request-bytes",
        str(options.max_request_bytes),
    ]
    started = time.perf_counter()
    with open(folder / "server.log", "ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            command,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment(options),
            start_new_session=True,
        )
    server = RunningServer(name, version, ports[0], ports[2], process, folder, 0.0)
    try:
        while time.perf_counter() - started < options.ready_timeout:
            if process.poll() is not None:
                # The bind error comes before a long shutdown traceback: read all of this try's
                # log, not the tail the message shows.
                taken = port_taken(folder / "server.log", since=log_start)
                raise (PortTaken if taken else ServingError)(
                    f"the model server for {name} {version} exited with code "
                    f"{process.returncode} before it was ready"
                    + (f" (port {ports[0]}, {ports[1]} or {ports[2]} was taken)" if taken else "")
                    + f". Its log ends:\n{server.log_tail()}"
                )
            if _status(ports[0], f"/v2/models/{name}/ready", timeout=1.0) == 200:
                server.load_seconds = time.perf_counter() - started
                return server
            time.sleep(0.02)
        raise ServingError(
            f"the model server for {name} {version} was not ready after "
            f"{options.ready_timeout:.0f} s (ready_timeout). Its log ends:\n{server.log_tail()}"
        )
    except BaseException:
        stop_process(process)
        raise


def port_taken(log: Path, since: int = 0) -> bool:
    """Whether a server's log, from byte `since` on, says its port was taken by another process.

    A port chosen free (bound to port 0, then released) can be taken before the server binds
    it; the bind error can sit far above the end of the log, before a shutdown traceback.
    """
    if not log.exists():
        return False
    with open(log, "rb") as text:
        text.seek(since)
        return b"address already in use" in text.read().lower()


def start_artifact(
    artifact: Path,
    store_root: Path,
    folder: Path,
    options: ServerOptions,
    name: str,
    version: str,
    ports: tuple[int, int] | None = None,
    *,
    digest: str | None = None,
) -> RunningServer:
    """Start serving one artifact and wait until it is ready; the caller stops it.

    Args:
        artifact: The artifact folder (inside `store_root`).
        store_root: The artifact store the runtime's safe loader confines paths to.
        folder: A fresh working folder for this server's settings and log.
        options: Runtime Python and limits.
        name: Model name the server serves it as.
        version: Version label.
        ports: (HTTP, metrics) ports to listen on; free ones by default.
        digest: The registry's digest of the artifact, checked by the runtime before loading.

    Raises:
        ServingError: The server exited or was not ready in time (it is stopped); the log's
            tail says why.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # free ports can be taken before the server binds them: try again
        try:
            return _start(folder, name, version, artifact, store_root, options, ports, digest)
        except PortTaken:
            if ports is not None:  # the caller's own ports: trying them again would not help
                raise
    return _start(folder, name, version, artifact, store_root, options, ports, digest)


@contextmanager
def serve_artifact(
    artifact: Path,
    store_root: Path,
    folder: Path,
    options: ServerOptions,
    name: str,
    version: str,
    ports: tuple[int, int] | None = None,
    *,
    digest: str | None = None,
) -> Iterator[RunningServer]:
    """Serve one artifact until the block ends; the process is always stopped.

    The arguments are `start_artifact`'s. Several servers side by side: `serve_group`
    (`ml_release.serving.group`) stops them together.
    """
    server = start_artifact(
        artifact, store_root, folder, options, name, version, ports, digest=digest
    )
    try:
        yield server
    finally:
        stop_process(server.process)
