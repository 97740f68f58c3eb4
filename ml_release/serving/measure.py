"""Side-by-side measurement of model servers: latency, batches, agreement, schema, memory.

Every server gets the same pre-serialized requests, interleaved request by request in a
rotating order, so a slow moment of the machine falls on all of them alike. Each answered
single request keeps its step, so the latency gate compares the servers step by step
(`paired_latencies`).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_release.serving.client import (
    V2Client,
    answer_columns,
    encode_request,
    output_schema,
    probabilities,
)
from ml_release.serving.server import RunningServer
from ml_release.spec import ServingSpec

CANDIDATE, PRODUCTION, REPLICA = "candidate", "production", "production_replica"
MAX_ERRORS_KEPT = 5


@dataclass
class ServerMeasurement:
    """What one server did in one run."""

    role: str
    version: str
    load_seconds: float
    peak_rss_mb: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    latency_steps: list[int] = field(default_factory=list)  # rotation step of each latency
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    single_proba: np.ndarray | None = None
    batch_proba: np.ndarray | None = None
    schema: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    load_error: str | None = None

    @property
    def runtime(self) -> dict[str, Any]:
        """What the ml_release runtime reported about the loaded model."""
        return (self.metadata.get("parameters") or {}).get("ml_release") or {}

    @property
    def probability_columns(self) -> list[str]:
        """Outputs holding the answers: class probabilities (model order) or a prediction."""
        return answer_columns([o["name"] for o in self.metadata.get("outputs") or []])

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds (NaN without answered requests)."""
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))

    def record_error(self, status: int, content: bytes) -> None:
        """Count a failed request and keep the first few answers as evidence."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"HTTP {status}: {content[:300].decode(errors='replace')}")


def paired_latencies(
    first: ServerMeasurement, second: ServerMeasurement
) -> tuple[np.ndarray, np.ndarray]:
    """Latencies of the steps both servers answered, in step order: (first's, second's)."""
    a = dict(zip(first.latency_steps, first.latencies_ms, strict=True))
    b = dict(zip(second.latency_steps, second.latencies_ms, strict=True))
    steps = sorted(a.keys() & b.keys())
    return np.array([a[k] for k in steps]), np.array([b[k] for k in steps])


def _rotation(roles: list[str], step: int) -> list[str]:
    shift = step % len(roles)
    return roles[shift:] + roles[:shift]


def measure_servers(
    servers: dict[str, RunningServer],
    rows: pd.DataFrame,
    columns: dict[str, str],
    settings: ServingSpec,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, ServerMeasurement]:
    """Measure every server on the same requests built from `rows` (the request contract).

    Args:
        servers: Role → running server (candidate, production, production_replica).
        rows: Raw evaluation rows; single requests take one row each, in order.
        columns: Raw column → kind: what the production clients send.
        settings: Request counts and batch sizes.
        progress: Called with a line of progress now and then.
    """
    roles = list(servers)
    clients = {role: V2Client(server.port) for role, server in servers.items()}
    out = {
        role: ServerMeasurement(role, server.version, server.load_seconds)
        for role, server in servers.items()
    }
    try:
        for role, client in clients.items():
            out[role].metadata = client.metadata(servers[role].name)
        singles = [encode_request(rows.iloc[[i]], columns) for i in range(len(rows))]
        progress(f"warm-up: {settings.warmup} requests per server")
        for step in range(settings.warmup):
            for role in _rotation(roles, step):
                clients[role].infer(servers[role].name, singles[step % len(singles)])
        answers: dict[str, list[np.ndarray]] = {role: [] for role in roles}
        for step in range(settings.requests):
            body = singles[step % len(singles)]
            for role in _rotation(roles, step):
                _single(clients[role], servers[role].name, body, out[role], answers[role], step)
            if (step + 1) % max(1, settings.requests // 4) == 0:
                progress(f"single requests: {step + 1}/{settings.requests} per server")
        for role in roles:
            if answers[role] and len(answers[role]) == settings.requests:
                out[role].single_proba = np.vstack(answers[role])
        for size in settings.batch_sizes:
            _batches(clients, servers, rows, columns, size, settings.batch_repeats, out)
        progress(f"batches of {', '.join(map(str, settings.batch_sizes))} rows measured")
        agreement_rows = rows.iloc[[i % len(rows) for i in range(settings.requests)]]
        batch_body = encode_request(agreement_rows, columns)
        for role in roles:
            status, content, _ = clients[role].infer(servers[role].name, batch_body)
            if status == 200:
                out[role].batch_proba = probabilities(
                    json.loads(content), out[role].probability_columns
                )
        for role, server in servers.items():
            out[role].peak_rss_mb = server.peak_rss_bytes() / 1024**2
    finally:
        for client in clients.values():
            client.close()
    return out


def _single(
    client: V2Client,
    name: str,
    body: bytes,
    measurement: ServerMeasurement,
    answers: list[np.ndarray],
    step: int,
) -> None:
    status, content, seconds = client.infer(name, body)
    measurement.requests += 1
    if status != 200:
        measurement.record_error(status, content)
        return
    measurement.latencies_ms.append(seconds * 1000)
    measurement.latency_steps.append(step)
    response = json.loads(content)
    if not measurement.schema:
        measurement.schema = output_schema(response)
    answers.append(probabilities(response, measurement.probability_columns)[0])


def _batches(
    clients: dict[str, V2Client],
    servers: dict[str, RunningServer],
    rows: pd.DataFrame,
    columns: dict[str, str],
    size: int,
    repeats: int,
    out: dict[str, ServerMeasurement],
) -> None:
    body = encode_request(rows.iloc[[i % len(rows) for i in range(size)]], columns)
    timings: dict[str, list[float]] = {role: [] for role in clients}
    for step in range(repeats):
        for role in _rotation(list(clients), step):
            status, content, seconds = clients[role].infer(servers[role].name, body)
            if status == 200:
                timings[role].append(seconds)
            else:
                out[role].record_error(status, content)
    for role, seconds in timings.items():
        if seconds:
            median = float(np.median(seconds))
            out[role].batches.append(
                {
                    "batch_size": size,
                    "p50_ms": median * 1000,
                    "p99_ms": float(np.percentile(seconds, 99)) * 1000,
                    "rows_per_second": size / median,
                }
            )
