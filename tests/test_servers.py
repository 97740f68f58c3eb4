"""The test servers (tests/servers.py, and `dg dev` of tests/browser_support.py) survive a
port taken between choosing and binding it.

A port is chosen free (bound to port 0, then released) and the server binds it later: another
process can take it in between, as one did to a model server in CI. Each server then tries a
new port; the log says which case it was.
"""

import socket

import psycopg
import pytest

from tests import servers

pytestmark = pytest.mark.slow


@pytest.fixture()
def taken_port(monkeypatch):
    """A port another socket holds, handed out by the first `free_port()` call."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        first = [port]
        real = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: first.pop() if first else real())
        yield port


def test_redis_moves_to_a_free_port_when_its_port_was_taken(taken_port):
    import redis

    with servers.redis_server() as server:
        assert server.port != taken_port
        assert redis.Redis(host="127.0.0.1", port=server.port).ping()


def test_postgres_moves_to_a_free_port_when_its_port_was_taken(taken_port):
    with servers.postgres_server() as server:
        assert server.port != taken_port
        with psycopg.connect(server.url()) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)


def test_dagster_dev_moves_to_a_free_port_when_its_port_was_taken(taken_port, tmp_path):
    """The browser test's `dg dev`: its webserver logs the bind error and runs on without a
    port; it is stopped and started again on another."""
    from tests.browser_support import DagsterDev
    from tests.conftest import PROJECT, cli_env

    (tmp_path / "home" / "dagster").mkdir(parents=True)
    server = DagsterDev(PROJECT, cli_env(tmp_path / "home"), tmp_path / "dg-dev.log")
    server.port = taken_port
    try:
        server.start()
        assert server.port != taken_port
        assert "address already in use" in (tmp_path / "dg-dev.log").read_text()
    finally:
        server.stop()
    assert server.alive() == []
