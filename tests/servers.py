"""Real servers for tests: PostgreSQL and Redis on 127.0.0.1, in temporary folders.

Both come from the Debian packages (`postgresql`, `redis-server`); `.ci/run` installs them.
Where a binary is missing, a developer's run skips the tests that need it (saying how to
install it) and CI fails them, as the browser test does with Chromium. PostgreSQL refuses to
run as root: as root, its data folder is created for and owned by the `postgres` system user,
and `initdb` / `pg_ctl` run as that user.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ml_release.serving.server import port_taken

IN_CI = os.environ.get("CI") == "true"
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")


PORT_ATTEMPTS = 3  # a port free when chosen can be taken before the server binds it


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_a_free_port(server, start, log: Path):
    """`start()` the server; when its log says its port was taken, again on a new port."""
    for attempt in range(PORT_ATTEMPTS):
        since = log.stat().st_size if log.exists() else 0
        try:
            return start()
        except RuntimeError:
            if attempt + 1 == PORT_ATTEMPTS or not port_taken(log, since):
                raise
            server.port = free_port()


def missing(what: str, install: str) -> None:
    """Skip (a developer's machine) or fail (CI) for a missing server binary."""
    if IN_CI:
        pytest.fail(f"{what} is missing in CI: .ci/run installs it with `{install}`")
    pytest.skip(f"{what} is missing: `{install}` (CI installs it and never skips)")


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else the newest Debian `postgresql-N` package."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: password-authenticated, TCP on 127.0.0.1 only."""

    user = "postgres"

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.password = "pw-" + secrets.token_hex(8)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ml-release-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self._databases = 0

    def _run(self, *args: str) -> None:
        # As root, the cluster belongs to the `postgres` system user (initdb refuses root).
        owner = {"user": "postgres", "group": "postgres"} if self._as_root else {}
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, **owner
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}\n{log}")

    def start(self) -> "PostgresServer":
        """initdb, then start the server and wait until it accepts connections."""
        secret = self.root / "pwfile"
        secret.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(secret, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={secret}",
            "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        return on_a_free_port(self, self._start_server, self.log)

    def _start_server(self) -> "PostgresServer":
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A `postgresql://` URL of `database`, with the password."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _fresh(self, prefix: str) -> str:
        self._databases += 1
        return f"{prefix}_{os.getpid()}_{self._databases}"

    def create_database(self, prefix: str = "db") -> str:
        """A new empty database (Dagster's instance needs its own); returns its URL."""
        import psycopg

        name = self._fresh(prefix)
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "registry") -> str:
        """A new empty schema in the `postgres` database; the URL that selects it.

        A schema costs a millisecond where a database copies its template (megabytes).
        """
        import psycopg

        name = self._fresh(prefix)
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"


class RedisServer:
    """A throwaway redis-server on 127.0.0.1: no persistence, its folder removed at the end."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ml-release-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The broker URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> "RedisServer":
        """Start it and wait until it answers PING (on a new port if its port was taken)."""
        return on_a_free_port(self, lambda: self._start(timeout), self.root / "redis.log")

    def _start(self, timeout: float) -> "RedisServer":
        import redis

        log = open(self.root / "redis.log", "ab")
        self.process = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.root), "--save", "", "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: {(self.root / 'redis.log').read_text()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server():
    """A started PostgreSQL server, stopped on exit (skip or fail when it is not installed)."""
    bin_dir = postgres_bin()
    if bin_dir is None or not all((bin_dir / p).exists() for p in PG_PROGRAMS):
        missing("PostgreSQL (initdb, pg_ctl)", "apt-get install -y postgresql")
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def redis_server():
    """A started redis-server, stopped on exit (skip or fail when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server", "apt-get install -y redis-server")
    server = RedisServer(Path(binary))
    try:
        yield server.start()
    finally:
        server.stop()


CELERY_CONFIG = """\
broker_url = {broker!r}
result_backend = {broker!r}
worker_hijack_root_logger = False
"""


class CeleryWorkers:
    """Celery worker processes for `dagster_celery.app`, one task at a time each (`solo` pool).

    `dagster_celery.app` reads its broker from a `dagster_celery_config` module on the path,
    as `dagster-celery worker start -y CONFIG` writes it; here the folder holding it is given
    to the workers through PYTHONPATH, with the project (assets, checks, resources).
    """

    def __init__(self, broker: str, env: dict[str, str], count: int, project: Path) -> None:
        self.broker = broker
        self.root = Path(tempfile.mkdtemp(prefix="ml-release-celery-"))
        (self.root / "dagster_celery_config.py").write_text(CELERY_CONFIG.format(broker=broker))
        self.env = {**env, "PYTHONPATH": os.pathsep.join([str(self.root), str(project)])}
        self.count = count
        self.project = project
        self.processes: list[subprocess.Popen] = []

    def log(self, n: int) -> str:
        """What worker `n` wrote so far."""
        return (self.root / f"worker-{n}.log").read_text(errors="replace")

    def start(self, timeout: float = 120.0) -> "CeleryWorkers":
        """Start the workers and wait until each answers a ping through the broker."""
        import sys

        from celery import Celery

        for n in range(self.count):
            out = open(self.root / f"worker-{n}.log", "wb")  # closed when the process ends
            command = [
                sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
                "--pool=solo", "-Q", "dagster", "-n", f"worker{n}@%h", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=self.project,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        client = Celery(broker=self.broker)
        deadline = time.monotonic() + timeout
        while len(client.control.ping(timeout=1.0)) < self.count:
            dead = [n for n, p in enumerate(self.processes) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(self.log(n)[-3000:] for n in range(self.count))
                raise RuntimeError(f"celery workers did not start (dead: {dead}):\n{logs}")
        return self

    @property
    def pids(self) -> set[int]:
        """The worker processes' ids (with the solo pool, tasks run in these processes)."""
        return {p.pid for p in self.processes}

    def stop(self) -> None:
        """Stop the workers (a warm shutdown, then a kill) and remove their folder."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
