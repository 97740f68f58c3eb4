"""Reading a window of the serving log, and replaying it to model servers side by side.

Logged requests become V2 requests, one row each (as production received them) or in batches,
and are sent to every server, with `concurrency` requests in flight, from keep-alive
connections. A request that times out or meets a refused connection is an error of that
server, never skipped.
"""

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.identifiers import quote
from ml_release.request_fields import request_check, where_logged
from ml_release.serving.client import V2Client, answer_columns, encode_request, probabilities
from ml_release.serving.server import RunningServer
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

MAX_ERRORS_KEPT = 5


@dataclass
class LoggedRequests:
    """A time-ordered window of the serving log."""

    request_ids: list[str]
    raw: pd.DataFrame
    logged_score: np.ndarray
    logged_latency_ms: np.ndarray
    labels: np.ndarray  # NaN where the label has not arrived

    def __len__(self) -> int:
        return len(self.request_ids)


def load_window(
    warehouse: Warehouse,
    spec: ReleaseSpec,
    contract: dict[str, str],
    count: int | None = None,
) -> LoggedRequests:
    """The latest `count` (default `shadow.requests`) logged requests, oldest first.

    Only requests within `shadow.window_days` of the newest are read, when it is set.

    Raises:
        DataInputError: The window is empty, or a request does not match the request contract
            (a field missing, unexpected or mistyped: `ml_release.request_fields`).
    """
    log, settings = spec.data.serving_log, spec.shadow
    time_column = quote(spec.data.timestamp_column)
    where = ""
    if settings.window_days is not None:
        where = (
            f"WHERE {time_column} >= (SELECT max({time_column}) FROM {quote(keys.SERVING_LOG)}) "
            f"- INTERVAL (CAST({float(settings.window_days) * 86400} AS BIGINT)) SECOND"
        )
    present = warehouse.columns(keys.SERVING_LOG)
    # The logged answer and latency are evidence only: no gate needs them, so read when present.
    optional = [c for c in (log.prediction_column, log.latency_column) if c in present]
    columns = ", ".join(
        quote(c) for c in (log.request_id_column, log.request_column, *optional, spec.data.label)
    )
    frame = warehouse.frame(
        f"SELECT * FROM (SELECT {columns}, {time_column} AS _t FROM {quote(keys.SERVING_LOG)} "
        f"{where} ORDER BY _t DESC, {quote(log.request_id_column)} DESC LIMIT ?) ORDER BY _t",
        [count or settings.requests],
    )
    if frame.empty:
        raise DataInputError(
            f"serving_log has no request to replay{' in the window' if where else ''} "
            "(shadow.window_days)"
        )
    check = request_check(spec, contract)
    check.add(frame[log.request_id_column], frame[log.request_column])
    check.raise_if_any(where_logged(spec))
    raw = pd.DataFrame([json.loads(text) for text in frame[log.request_column]])

    def logged(column: str) -> np.ndarray:
        if column not in frame:
            return np.full(len(frame), np.nan)
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(float)

    return LoggedRequests(
        request_ids=frame[log.request_id_column].astype(str).tolist(),
        raw=raw,
        logged_score=logged(log.prediction_column),
        logged_latency_ms=logged(log.latency_column),
        labels=pd.to_numeric(frame[spec.data.label], errors="coerce").to_numpy(float),
    )


@dataclass
class Answers:
    """What one server answered to every replayed request (NaN where it failed)."""

    role: str
    version: str
    status: list[str]
    latency_ms: np.ndarray
    proba: np.ndarray
    columns: list[str]
    classes: list
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        """Requests answered with HTTP 200."""
        return np.array([s == "200" for s in self.status], dtype=bool)

    @property
    def error_count(self) -> int:
        """Requests not answered with HTTP 200."""
        return int((~self.ok).sum())

    def positive_score(self) -> np.ndarray:
        """P(class 1 (or True)), else of the last class; a regressor's prediction."""
        index = next(
            (i for i, c in enumerate(self.classes) if c in (1, True, "1")), len(self.classes) - 1
        )
        return self.proba[:, index]

    def predicted_class(self) -> np.ndarray:
        """Position of the most probable class per request (NaN where it failed)."""
        failed = np.isnan(self.proba).any(axis=1)
        return np.where(failed, np.nan, np.argmax(np.nan_to_num(self.proba), axis=1))


def replay(
    servers: dict[str, RunningServer],
    requests: LoggedRequests,
    contract: dict[str, str],
    concurrency: int,
    timeout: float,
    progress: Callable[[int, int], None] = lambda done, total: None,
    batch_size: int = 1,
    latency_requests: int = 0,
) -> dict[str, Answers]:
    """Send every logged request to every server; returns each server's answers in log order.

    With `batch_size` 1 each request is sent alone and timed. With more, the window goes in
    batches of `batch_size` rows, then `latency_requests` requests spread evenly over it are
    sent alone, at the same concurrency: only these single requests are timed, under the
    same conditions as a replay of single requests. Work items alternate which server is
    asked first, so a slow moment of the machine falls on both.
    """
    n, roles = len(requests), list(servers)
    out = _empty_answers(servers, n, timeout)
    if batch_size <= 1:
        work = [("single", np.array([i])) for i in range(n)]
    else:
        work = [("batch", np.arange(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]
        sample = np.unique(np.linspace(0, n - 1, min(n, latency_requests)).round().astype(int))
        work += [("timed", np.array([i])) for i in sample]
    local = threading.local()
    done, lock, reported = [0], threading.Lock(), [0]

    def send(item: int) -> None:
        if not hasattr(local, "clients"):
            local.clients = {r: V2Client(servers[r].port, timeout) for r in roles}
        kind, rows = work[item]
        for role in roles if item % 2 == 0 else roles[::-1]:
            server, answers = servers[role], out[role]
            _send(local.clients[role], server.name, requests, rows, contract, kind, answers)
        if kind == "timed":
            return
        with lock:
            done[0] += len(rows)
            if done[0] - reported[0] >= max(1, n // 20) or done[0] == n:
                reported[0] = done[0]
                progress(done[0], n)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="replay") as pool:
        list(pool.map(send, range(len(work))))
    return out


def _empty_answers(servers: dict[str, RunningServer], n: int, timeout: float) -> dict:
    answers = {}
    for role, server in servers.items():
        client = V2Client(server.port, timeout)
        try:
            meta = client.metadata(server.name)
        finally:
            client.close()
        columns = answer_columns([o["name"] for o in meta.get("outputs") or []])
        answers[role] = Answers(
            role,
            server.version,
            ["not sent"] * n,
            np.full(n, np.nan),
            np.full((n, len(columns)), np.nan),
            columns,
            (meta.get("parameters") or {}).get("ml_release", {}).get("classes", []),
        )
    return answers


def _send(
    client: V2Client,
    model: str,
    requests: LoggedRequests,
    rows: np.ndarray,
    contract: dict[str, str],
    kind: str,
    answers: Answers,
) -> None:
    """One work item; a refused batch is re-sent row by row, so each request gets its status.

    Kinds: "single" and "row" (one request, answered; "single" is timed), "batch" (untimed),
    "timed" (a timed single whose answer the batch already gave). A failure always wins over
    a 200 for the same request.
    """
    body = encode_request(requests.raw.iloc[rows], contract)
    status, content = _post(client, model, body, rows, answers, timed=kind in ("single", "timed"))
    if status == 200:
        if kind != "timed":
            answers.proba[rows] = probabilities(json.loads(content), answers.columns)
            for i in rows:
                if answers.status[i] == "not sent":
                    answers.status[i] = "200"
        return
    if kind == "batch" and isinstance(status, int):  # HTTP error: which request caused it?
        for i in rows:
            _send(client, model, requests, np.array([i]), contract, "row", answers)
    elif isinstance(status, str):  # timeout or refused connection: every request in it failed
        for i in rows:
            answers.status[i] = status


def _post(
    client: V2Client,
    model: str,
    body: bytes,
    rows: np.ndarray,
    answers: Answers,
    timed: bool,
) -> tuple[str | int, bytes]:
    """POST one body; returns (HTTP status, content), or (failure kind, b"") without an answer."""
    where = f"request {rows[0]}" if len(rows) == 1 else f"requests {rows[0]}-{rows[-1]}"
    try:
        status, content, seconds = client.infer(model, body)
    except TimeoutError:
        client.close()
        _keep(answers, f"{where}: no answer within the timeout")
        return "timeout", b""
    except OSError as exc:
        client.close()
        _keep(answers, f"{where}: {type(exc).__name__}: {exc}")
        return "connection_error", b""
    if status != 200:
        if len(rows) == 1:
            answers.status[rows[0]] = str(status)
            _keep(answers, f"{where}: HTTP {status}: {content[:300].decode(errors='replace')}")
        return status, content
    if timed:
        answers.latency_ms[rows[0]] = seconds * 1000
    return 200, content


def _keep(answers: Answers, message: str) -> None:
    if len(answers.errors) < MAX_ERRORS_KEPT:
        answers.errors.append(message)
