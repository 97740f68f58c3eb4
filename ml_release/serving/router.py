"""A weighted, sticky traffic split between a production and a candidate model server.

A canary sends a share of a model's traffic (0-100 %) to the candidate server and the rest to
production. A deployment uses its platform's split for that: KServe's `canaryTrafficPercent`
on the InferenceService, or an Argo Rollouts `setWeight` step. On one machine, `LocalRouter`
plays that part: an HTTP reverse proxy on 127.0.0.1 in front of two local V2 (Open Inference
Protocol) servers, through which logged requests are replayed in time order (`replay`).
Both sides of the seam are described by `TrafficSplit`: set the weight, read back what each
backend served.

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

import abc
import asyncio
import hashlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import uvicorn

from ml_release.serving.server import ServingError

CANDIDATE = "candidate"
PRODUCTION = "production"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
BUCKETS = 10_000
REQUEST_ID_HEADER = "X-Request-Id"
START_SECONDS = 10.0
STOP_SECONDS = 5.0

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the router sets itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
_MAX_IDLE = 64


class RouterError(ServingError):
    """The router did not start or stop."""


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """What one routed inference request got.

    Attributes:
        request_id: The id the request was routed by.
        backend: "candidate" or "production": where the split sent it.
        status: That backend's HTTP status, or "timeout" / "connection_error".
        latency_s: Seconds of that backend's round trip, as the router saw it.
        probabilities: The 200 response's `proba_*` outputs (output name to values), else None.
        timestamp: Wall-clock time (`time.time()`) the router received the request.
        fallback_status: Production's status (or "timeout" / "connection_error") when a failed
            candidate request was retried on production; None otherwise.
    """

    request_id: str
    backend: str
    status: int | str
    latency_s: float
    probabilities: dict[str, list[float]] | None
    timestamp: float
    fallback_status: int | str | None = None

    @property
    def error(self) -> bool:
        """A timeout, a connection error, or a status other than 2xx."""
        return not (isinstance(self.status, int) and 200 <= self.status < 300)


class TrafficSplit(abc.ABC):
    """The split between production and a candidate, and what each of them served.

    Implemented on one machine by `LocalRouter`. A deployment would implement it over its
    platform: `set_weight` patching KServe's `canaryTrafficPercent` (or an Argo Rollouts
    `setWeight` step), `records` reading the platform's inference logs.
    """

    @property
    @abc.abstractmethod
    def weight(self) -> float:
        """Percent of inference requests routed to the candidate (0-100)."""

    @abc.abstractmethod
    def set_weight(self, percent: float) -> None:
        """Route `percent` % (0-100) of the inference requests to the candidate from now on.

        Raises:
            ValueError: `percent` is not a number from 0 to 100.
        """

    @abc.abstractmethod
    def mark(self) -> int:
        """A marker: `records(since=marker)` returns only the requests completed after it."""

    @abc.abstractmethod
    def records(
        self, since: int = 0, start: float | None = None, end: float | None = None
    ) -> list[RouteRecord]:
        """The routed inference requests completed so far, in order of completion.

        Args:
            since: A marker from `mark()`; 0 for every record.
            start: Only requests received at or after this wall-clock time (`time.time()`).
            end: Only requests received before this wall-clock time.
        """


def request_bucket(request_id: str) -> int:
    """The id's bucket, 0 to 9,999: a stable hash (BLAKE2b), the same in every process."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def backend_for(request_id: str, weight: float) -> str:
    """The backend an inference request with this id goes to at `weight` percent."""
    return CANDIDATE if request_bucket(request_id) < weight * 100 else PRODUCTION


def _checked_weight(percent: float) -> float:
    value = float(percent)
    if not 0.0 <= value <= 100.0:  # NaN fails too
        raise ValueError(f"weight {percent!r}: expected a percentage from 0 to 100")
    return value


class _Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _BadResponse(Exception):
    """The backend's bytes are not an HTTP/1.1 response."""


class _Backend:
    """Keep-alive HTTP/1.1 connections to one server on 127.0.0.1 (a LIFO pool)."""

    def __init__(self, port: int):
        self.port = port
        self._host = f"127.0.0.1:{port}".encode()
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> _Answer:
        parts = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self._host, b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        data = b"".join(parts)
        while True:
            reused, (reader, writer) = await self._connection()
            try:
                writer.write(data)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    partial = getattr(exc, "partial", b"")
                    if reused and not partial:
                        # A kept-alive connection the server had closed: retry on a fresh one
                        # (inference is idempotent, and nothing was answered on this one).
                        writer.transport.abort()
                        continue
                    raise
                answer, keep = await self._read(reader, head, method)
            except BaseException:  # a timeout's cancellation too: the connection is unusable
                writer.transport.abort()
                raise
            if keep and len(self._idle) < _MAX_IDLE:
                self._idle.append((reader, writer))
            else:
                writer.transport.abort()
            return answer

    async def _connection(self) -> tuple[bool, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not (writer.is_closing() or reader.at_eof()):
                return True, (reader, writer)
            writer.transport.abort()
        return False, await asyncio.open_connection("127.0.0.1", self.port)

    async def _read(
        self, reader: asyncio.StreamReader, head: bytes, method: bytes
    ) -> tuple[_Answer, bool]:
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
            raise _BadResponse(f"status line {lines[0][:80]!r}")
        status = int(status_line[1])
        keep = status_line[0] == b"HTTP/1.1"
        length, chunked, headers = None, False, []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = keep and b"close" not in value.lower()
            if name not in _HOP_BY_HOP:
                headers.append((name, value))
        if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, keep = await reader.read(), False
        return _Answer(status, headers, body), keep

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].transport.abort()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append((await reader.readexactly(size + 2))[:-2])


def _error_answer(status: int, message: str) -> _Answer:
    body = json.dumps({"error": f"router: {message}"}).encode()
    return _Answer(status, [(b"content-type", b"application/json")], body)


def _probabilities(body: bytes) -> dict[str, list[float]] | None:
    try:
        outputs = json.loads(body).get("outputs") or []
        return {o["name"]: list(o["data"]) for o in outputs if _is_probability(o)}
    except (ValueError, AttributeError, TypeError, KeyError):
        return None


def _is_probability(output: dict[str, Any]) -> bool:
    return str(output.get("name", "")).startswith("proba_")


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
        self._weight = _checked_weight(weight)
        self._requested_port = port or 0
        self._port: int | None = None
        self._infer_path = f"/v2/models/{model}/infer"
        self._ports = {PRODUCTION: production_port, CANDIDATE: candidate_port}
        self._backends: dict[str, _Backend] = {}
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
        self._weight = _checked_weight(percent)

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
        self._backends = {name: _Backend(port) for name, port in self._ports.items()}
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
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
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
        status = outcome.status if isinstance(outcome, _Answer) else outcome
        fallback_status = None
        answer = _answer_of(outcome, backend, timeout)
        if backend == CANDIDATE and self.fallback and not 200 <= answer.status < 300:
            retried, _ = await self._attempt(
                PRODUCTION, b"POST", target, headers, body, self.production_timeout_s
            )
            fallback_status = retried.status if isinstance(retried, _Answer) else retried
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
    ) -> tuple[_Answer | str, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._backends[backend].request(method, target, headers, body)
        except TimeoutError:
            outcome = TIMEOUT
        except (OSError, EOFError, asyncio.LimitOverrunError, ValueError, _BadResponse):
            # OSError: refused, reset; EOFError: asyncio.IncompleteReadError, cut off mid-answer
            outcome = CONNECTION_ERROR
        return outcome, time.perf_counter() - started


def _answer_of(outcome: _Answer | str, backend: str, timeout: float | None) -> _Answer:
    if isinstance(outcome, _Answer):
        return outcome
    if outcome == TIMEOUT:
        return _error_answer(504, f"the {backend} server did not answer within {timeout} s")
    return _error_answer(502, f"the {backend} server refused or dropped the connection")


async def _respond(send: Any, answer: _Answer) -> None:
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: installed with uvicorn[standard]
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- replaying logged requests ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the caller got for one replayed request.

    Attributes:
        request_id: The id sent in the `X-Request-Id` header.
        status: HTTP status, or "timeout" / "connection_error".
        body: The response body (b"" without a response).
        seconds: Round trip as the caller saw it.
    """

    request_id: str
    status: int | str
    body: bytes
    seconds: float


def _address(target: int | str) -> tuple[str, int]:
    if isinstance(target, int):
        return "127.0.0.1", target
    parts = urlsplit(target if "//" in target else f"http://{target}")
    if parts.port is None:
        raise ValueError(f"{target!r}: expected a port or a URL with a port")
    return parts.hostname or "127.0.0.1", parts.port


def replay(
    target: int | str,
    bodies: Sequence[bytes],
    request_ids: Sequence[str],
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
    *,
    model: str,
    timeout_s: float = 60.0,
) -> list[ReplayResult]:
    """POST V2 inference requests in order, at most `concurrency` at a time.

    Each worker thread keeps one HTTP/1.1 connection alive and takes the next request in
    order; request `i` is sent with `request_ids[i]` in the `X-Request-Id` header.

    Args:
        target: A port on 127.0.0.1, or a base URL such as `LocalRouter.url`.
        bodies: Serialized V2 request bodies.
        request_ids: One id per body.
        concurrency: Requests in flight at most.
        progress: Called now and then from the calling thread as `progress(done, total)`, and
            once at the end.
        model: Model name of the inference path.
        timeout_s: Seconds to wait for each answer before recording "timeout".

    Returns:
        One result per request, in the order of `bodies`.

    Raises:
        ValueError: `bodies` and `request_ids` differ in length, or `concurrency` < 1.
    """
    if len(bodies) != len(request_ids):
        raise ValueError(f"{len(bodies)} bodies but {len(request_ids)} request ids")
    if concurrency < 1:
        raise ValueError(f"concurrency {concurrency}: expected at least 1")
    host, port = _address(target)
    path = f"/v2/models/{model}/infer"
    total = len(bodies)
    results: list[ReplayResult | None] = [None] * total
    lock = threading.Lock()
    state = {"next": 0, "done": 0}
    failures: list[BaseException] = []

    def work() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            while not failures:
                with lock:
                    index = state["next"]
                    if index >= total:
                        return
                    state["next"] = index + 1
                request_id = request_ids[index]
                headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: request_id}
                status, content, seconds = _post(connection, path, bodies[index], headers)
                results[index] = ReplayResult(request_id, status, content, seconds)
                with lock:
                    state["done"] += 1
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    workers = [
        threading.Thread(target=work, name=f"ml-release-replay-{i}", daemon=True)
        for i in range(min(concurrency, max(total, 1)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        while worker.is_alive():
            worker.join(0.1)
            if progress is not None:
                progress(state["done"], total)
    if failures:
        raise failures[0]
    if progress is not None:
        progress(state["done"], total)
    return results  # type: ignore[return-value]


def _post(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int | str, bytes, float]:
    reused = connection.sock is not None
    started = time.perf_counter()
    while True:
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            content = response.read()
            return response.status, content, time.perf_counter() - started
        except TimeoutError:
            connection.close()
            return TIMEOUT, b"", time.perf_counter() - started
        except (OSError, http.client.HTTPException):
            connection.close()
            if reused:  # a kept-alive connection the server had closed: once more, fresh
                reused = False
                continue
            return CONNECTION_ERROR, b"", time.perf_counter() - started
