"""Replaying logged V2 inference requests in order against a server or a traffic split.

`replay` posts serialized requests, at most `concurrency` at a time, each named by its logged
request id in the `X-Request-Id` header (so a split routes it without parsing the body).
"""

import http.client
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ml_release.serving.traffic import CONNECTION_ERROR, REQUEST_ID_HEADER, TIMEOUT


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
