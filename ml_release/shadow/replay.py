"""Reading a window of the serving log, and replaying it to model servers side by side.

Each logged request becomes a one-row V2 request (as production received it) and is sent to
every server, with `concurrency` requests in flight, from keep-alive connections. A request
that times out or meets a refused connection is an error of that server, never skipped.
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
from ml_release.serving.client import V2Client, encode_request, probabilities
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
        DataInputError: The window is empty, or a request lacks a column of the contract.
    """
    log, settings = spec.data.serving_log, spec.shadow
    time_column = quote(spec.data.timestamp_column)
    where = ""
    if settings.window_days is not None:
        where = (
            f"WHERE {time_column} >= (SELECT max({time_column}) FROM {quote(keys.SERVING_LOG)}) "
            f"- INTERVAL (CAST({float(settings.window_days) * 86400} AS BIGINT)) SECOND"
        )
    columns = ", ".join(
        quote(c)
        for c in (
            log.request_id_column,
            log.request_column,
            log.prediction_column,
            log.latency_column,
            spec.data.label,
        )
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
    raw = pd.DataFrame([json.loads(text) for text in frame[log.request_column]])
    missing = [c for c in contract if c not in raw.columns]
    if missing:
        raise DataInputError(
            f"serving_log.{log.request_column}: the logged requests lack {', '.join(missing)}, "
            "which the feature code's REQUIRED_COLUMNS needs; they cannot be replayed"
        )
    return LoggedRequests(
        request_ids=frame[log.request_id_column].astype(str).tolist(),
        raw=raw,
        logged_score=pd.to_numeric(frame[log.prediction_column], errors="coerce").to_numpy(float),
        logged_latency_ms=pd.to_numeric(frame[log.latency_column], errors="coerce").to_numpy(float),
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
        """P(positive class): class 1 (or True) when present, else the last class."""
        index = next(
            (i for i, c in enumerate(self.classes) if c in (1, True, "1")), len(self.classes) - 1
        )
        return self.proba[:, index]


def replay(
    servers: dict[str, RunningServer],
    requests: LoggedRequests,
    contract: dict[str, str],
    concurrency: int,
    timeout: float,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Answers]:
    """Send every logged request to every server; returns each server's answers in log order."""
    n, roles = len(requests), list(servers)
    bodies = [encode_request(requests.raw.iloc[[i]], contract) for i in range(n)]
    meta = {}
    for role, server in servers.items():
        client = V2Client(server.port, timeout)
        try:
            meta[role] = client.metadata(server.name)
        finally:
            client.close()
    columns = {
        role: [o["name"] for o in m.get("outputs") or [] if o["name"].startswith("proba_")]
        for role, m in meta.items()
    }
    out = {
        role: Answers(
            role,
            servers[role].version,
            ["not sent"] * n,
            np.full(n, np.nan),
            np.full((n, len(columns[role])), np.nan),
            columns[role],
            (meta[role].get("parameters") or {}).get("ml_release", {}).get("classes", []),
        )
        for role in roles
    }
    local = threading.local()
    done, lock = [0], threading.Lock()

    def send(i: int) -> None:
        if not hasattr(local, "clients"):
            local.clients = {r: V2Client(servers[r].port, timeout) for r in roles}
        order = roles if i % 2 == 0 else roles[::-1]
        for role in order:
            _one(local.clients[role], servers[role].name, bodies[i], i, out[role])
        with lock:
            done[0] += 1
            if done[0] % max(1, n // 20) == 0 or done[0] == n:
                progress(done[0], n)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="replay") as pool:
        list(pool.map(send, range(n)))
    return out


def _one(client: V2Client, model: str, body: bytes, i: int, answers: Answers) -> None:
    try:
        status, content, seconds = client.infer(model, body)
    except TimeoutError:
        client.close()
        answers.status[i] = "timeout"
        _keep(answers, f"request {i}: no answer within the timeout")
        return
    except OSError as exc:
        client.close()
        answers.status[i] = "connection_error"
        _keep(answers, f"request {i}: {type(exc).__name__}: {exc}")
        return
    answers.status[i] = str(status)
    if status != 200:
        _keep(answers, f"request {i}: HTTP {status}: {content[:300].decode(errors='replace')}")
        return
    answers.latency_ms[i] = seconds * 1000
    answers.proba[i] = probabilities(json.loads(content), answers.columns)[0]


def _keep(answers: Answers, message: str) -> None:
    if len(answers.errors) < MAX_ERRORS_KEPT:
        answers.errors.append(message)
