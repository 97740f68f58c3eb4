"""`LocalRouter`: the traffic split (`ml_release.serving.traffic`) as a local reverse proxy.

On one machine, `LocalRouter` plays the part a deployment's platform plays (KServe's
`canaryTrafficPercent`, an Argo Rollouts `setWeight` step): an HTTP reverse proxy on 127.0.0.1
in front of two local V2 (Open Inference Protocol) servers, through which logged requests are
replayed in time order (`ml_release.serving.replay`).

Routing rules of `LocalRouter`:

- `POST /v2/models/{model}/infer` goes to the candidate when
  `bucket(request id) < weight * 100`, where `bucket` is a stable hash of the request id
  modulo 10,000 (`request_bucket`). The same id always goes to the same backend at a given
  weight, and raising the weight only moves ids from production to the candidate, never back.
- The request id is the `X-Request-Id` header when the request has one: it wins over the V2
  body's `"id"`, because the router can then route without parsing the body, and a replay
  names each logged request in the header without rewriting its bytes. Without the header the
  body's `"id"` is used; without either, the router draws a random id (recorded, not sticky).
- Every other path (health, readiness, metadata, other models) goes to production and is not
  recorded.
- A production-routed request gets production's answer: its status, its headers (except the
  hop-by-hop ones) and its body, byte for byte.
- A candidate attempt that times out (`timeout_s`), cannot connect or is cut off
  (`"connection_error"`), or answers anything but 2xx is a candidate error. With `fallback`
  on (the default) the router then sends the same request to production and returns
  production's answer, so the canary never fails a caller's request that production would
  have answered; the record keeps the candidate's outcome, and production's status in
  `fallback_status`. With `fallback` off the caller gets the candidate's answer, or a 504
  (timeout) / 502 (connection error) with a JSON `error` from the router.
"""

import asyncio
import json
import socket
import threading
import time
import uuid
from typing import Any

import uvicorn

from ml_release.serving.client import PREDICTION
from ml_release.serving.server import ServingError
from ml_release.serving.traffic import (
    CANDIDATE,
    CONNECTION_ERROR,
    PRODUCTION,
    REQUEST_ID_HEADER,
    TIMEOUT,
    RouteRecord,
    TrafficSplit,
    backend_for,
    checked_weight,
)
from ml_release.serving.upstream import HOP_BY_HOP, Answer, Backend, BadResponse

START_SECONDS = 10.0
STOP_SECONDS = 5.0

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


class RouterError(ServingError):
    """The router did not start or stop."""


def _error_answer(status: int, message: str) -> Answer:
    body = json.dumps({"error": f"router: {message}"}).encode()
    return Answer(status, [(b"content-type", b"application/json")], body)


def _probabilities(body: bytes) -> dict[str, list[float]] | None:
    try:
        outputs = json.loads(body).get("outputs") or []
        return {o["name"]: list(o["data"]) for o in outputs if _is_probability(o)}
    except (ValueError, AttributeError, TypeError, KeyError):
        return None


def _is_probability(output: dict[str, Any]) -> bool:
    """A class probability, or a regressor's prediction: what the canary compares."""
    name = str(output.get("name", ""))
    return name.startswith("proba_") or name == PREDICTION


def _request_id(headers: list[tuple[bytes, bytes]], body: bytes) -> str:
    for name, value in headers:
        if name == _REQUEST_ID and value:
            return value.decode("latin-1")
    if b'"id"' in body:
        try:
            found = json.loads(body).get("id")
        except (ValueError, AttributeError):
            found = None
        if isinstance(found, str) and found:
            return found
    return uuid.uuid4().hex


class LocalRouter(TrafficSplit):
    """The split as a local HTTP reverse proxy in a background thread with its own event loop.

    Use it as a context manager: the router listens on a free 127.0.0.1 port (`port`, `url`)
    inside the block and is stopped when the block ends, however it ends. Requests still in
    flight then are cut off. Connections to both backends are kept alive and reused.

    Args:
        production_port: HTTP port of the production model server.
        candidate_port: HTTP port of the candidate model server.
        model: Model name of the inference path that is split.
        timeout_s: Seconds the candidate has to answer before it counts as a timeout.
        weight: Initial percent of the inference requests sent to the candidate.
        fallback: Retry failed candidate requests on production (see the module's doc).
        production_timeout_s: Seconds production has to answer (then 504), None for no limit.
        port: Port to listen on; a free one by default.
    """

    def __init__(
        self,
        production_port: int,
        candidate_port: int,
        model: str,
        timeout_s: float = 5.0,
        weight: float = 0.0,
        fallback: bool = True,
        production_timeout_s: float | None = 30.0,
        port: int | None = None,
    ):
        self.model = model
        self.timeout_s = timeout_s
        self.production_timeout_s = production_timeout_s
        self.fallback = fallback
        self._weight = checked_weight(weight)
        self._requested_port = port or 0
        self._port: int | None = None
        self._infer_path = f"/v2/models/{model}/infer"
        self._ports = {PRODUCTION: production_port, CANDIDATE: candidate_port}
        self._backends: dict[str, Backend] = {}
        self._records: list[RouteRecord] = []
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._failure: BaseException | None = None

    # -- TrafficSplit -------------------------------------------------------------------------

    @property
    def weight(self) -> float:
        """Percent of inference requests routed to the candidate (0-100)."""
        return self._weight

    def set_weight(self, percent: float) -> None:
        """Route `percent` % of the inference requests to the candidate from now on.

        Raises:
            ValueError: `percent` is not a number from 0 to 100.
        """
        self._weight = checked_weight(percent)

    def mark(self) -> int:
        """A marker: `records(since=marker)` returns only the requests completed after it."""
        return len(self._records)

    def records(
        self, since: int = 0, start: float | None = None, end: float | None = None
    ) -> list[RouteRecord]:
        """The routed inference requests completed so far, in order of completion.

        Args:
            since: A marker from `mark()`; 0 for every record.
            start: Only requests received at or after this wall-clock time (`time.time()`).
            end: Only requests received before this wall-clock time.
        """
        selected = self._records[since:]
        if start is not None:
            selected = [r for r in selected if r.timestamp >= start]
        if end is not None:
            selected = [r for r in selected if r.timestamp < end]
        return selected

    # -- the proxy ----------------------------------------------------------------------------

    def backend_for(self, request_id: str) -> str:
        """The backend an inference request with this id goes to at the current weight."""
        return backend_for(request_id, self._weight)

    @property
    def port(self) -> int:
        """The port the router listens on (once started)."""
        if self._port is None:
            raise RouterError("the router is not running")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the router."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalRouter":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Listen and serve in a background thread; returns once the router accepts requests.

        Raises:
            RouterError: It is already running, or it did not start in time.
        """
        if self._thread is not None:
            raise RouterError("the router is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,  # the backend's own Server and Date headers pass through
            date_header=False,
            proxy_headers=False,
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._failure = None
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"ml-release-router-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                failure = self._failure
                self.close()
                sock.close()
                raise RouterError(f"the router did not start: {failure!r}") from failure
            time.sleep(0.005)

    def close(self) -> None:
        """Stop the router (requests in flight are cut off); idempotent.

        Raises:
            RouterError: Its thread did not end within STOP_SECONDS.
        """
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        server.should_exit = server.force_exit = True
        thread.join(STOP_SECONDS)
        self._thread = self._server = None
        self._port = None
        if thread.is_alive():
            raise RouterError(f"the router thread {thread.name} did not stop in {STOP_SECONDS} s")

    def _run(self, sock: socket.socket) -> None:
        loop = _new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # reported by start() or lost with the thread
            self._failure = exc
        finally:
            sock.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._backends = {name: Backend(port) for name, port in self._ports.items()}
        try:
            await self._server.serve(sockets=[sock])
        finally:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for backend in self._backends.values():
                backend.close()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        method = scope["method"].encode()
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        if method == b"POST" and scope["path"] == self._infer_path:
            await self._infer(target, headers, body, send)
            return
        outcome, _ = await self._attempt(
            PRODUCTION, method, target, headers, body, self.production_timeout_s
        )
        await _respond(send, _answer_of(outcome, PRODUCTION, self.production_timeout_s))

    async def _infer(
        self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, send: Any
    ) -> None:
        received = time.time()
        request_id = _request_id(headers, body)
        backend = backend_for(request_id, self._weight)
        timeout = self.timeout_s if backend == CANDIDATE else self.production_timeout_s
        outcome, seconds = await self._attempt(backend, b"POST", target, headers, body, timeout)
        status = outcome.status if isinstance(outcome, Answer) else outcome
        fallback_status = None
        answer = _answer_of(outcome, backend, timeout)
        if backend == CANDIDATE and self.fallback and not 200 <= answer.status < 300:
            retried, _ = await self._attempt(
                PRODUCTION, b"POST", target, headers, body, self.production_timeout_s
            )
            fallback_status = retried.status if isinstance(retried, Answer) else retried
            answer = _answer_of(retried, PRODUCTION, self.production_timeout_s)
        await _respond(send, answer)
        # Recorded after the caller has its answer: the parsing is off the request's path.
        probabilities = _probabilities(outcome.body) if status == 200 else None
        self._records.append(
            RouteRecord(
                request_id, backend, status, seconds, probabilities, received, fallback_status
            )
        )

    async def _attempt(
        self,
        backend: str,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float | None,
    ) -> tuple[Answer | str, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._backends[backend].request(method, target, headers, body)
        except TimeoutError:
            outcome = TIMEOUT
        except (OSError, EOFError, asyncio.LimitOverrunError, ValueError, BadResponse):
            # OSError: refused, reset; EOFError: asyncio.IncompleteReadError, cut off mid-answer
            outcome = CONNECTION_ERROR
        return outcome, time.perf_counter() - started


def _answer_of(outcome: Answer | str, backend: str, timeout: float | None) -> Answer:
    if isinstance(outcome, Answer):
        return outcome
    if outcome == TIMEOUT:
        return _error_answer(504, f"the {backend} server did not answer within {timeout} s")
    return _error_answer(502, f"the {backend} server refused or dropped the connection")


async def _respond(send: Any, answer: Answer) -> None:
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: installed with uvicorn[standard]
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
