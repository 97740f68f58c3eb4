"""A small V2 (Open Inference Protocol) client: bodies built once, timed on a kept-alive socket.

Request bodies are serialized before any clock starts, so a measured latency is the socket
round trip plus the server's work; the harness's own share is measured by `bench/serving.py`.
"""

import http.client
import json
import math
import time
from typing import Any

import numpy as np
import pandas as pd

JSON_HEADERS = {"Content-Type": "application/json"}


def _values(series: pd.Series, kind: str) -> list[Any]:
    if kind == "numeric":
        numbers = pd.to_numeric(series, errors="coerce").astype("float64").tolist()
        return [None if not math.isfinite(v) else v for v in numbers]
    return [None if pd.isna(v) else str(v) for v in series.tolist()]


def encode_request(rows: pd.DataFrame, columns: dict[str, str]) -> bytes:
    """A V2 inference request for `rows`: one input per raw column, in `columns` order.

    Args:
        rows: Raw rows.
        columns: Column → "numeric" | "categorical" (the request contract).
    """
    inputs = [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": "FP64" if kind == "numeric" else "BYTES",
            "data": _values(rows[name], kind),
        }
        for name, kind in columns.items()
    ]
    return json.dumps({"inputs": inputs}, allow_nan=False).encode()


class V2Client:
    """HTTP/1.1 keep-alive connection to one model server."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port, self.timeout = port, timeout
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """Status, body and seconds for one request; a dropped keep-alive is retried once."""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self._connection.request(method, path, body, JSON_HEADERS if body else {})
                response = self._connection.getresponse()
                content = response.read()
                return response.status, content, time.perf_counter() - started
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def infer(self, model: str, body: bytes) -> tuple[int, bytes, float]:
        """POST an inference request."""
        return self.call("POST", f"/v2/models/{model}/infer", body)

    def metadata(self, model: str) -> dict[str, Any]:
        """The model's V2 metadata."""
        status, content, _ = self.call("GET", f"/v2/models/{model}")
        if status != 200:
            raise ConnectionError(f"metadata of {model}: HTTP {status}: {content[:300]!r}")
        return json.loads(content)

    def close(self) -> None:
        """Close the socket."""
        self._connection.close()


def output_schema(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per output: datatype and shape with the row count replaced by -1."""
    return {
        o["name"]: {"datatype": o["datatype"], "shape": [-1, *o["shape"][1:]]}
        for o in response.get("outputs", [])
    }


PREDICTION = "prediction"


def answer_columns(outputs: list[str]) -> list[str]:
    """The numeric answers among output names: `proba_<class>` columns, or a `prediction`."""
    probabilities = [name for name in outputs if name.startswith("proba_")]
    return probabilities or [name for name in outputs if name == PREDICTION]


def probabilities(response: dict[str, Any], columns: list[str]) -> np.ndarray:
    """The answer outputs named `columns`, as rows by columns (NaN where missing or null)."""
    outputs = {o["name"]: o["data"] for o in response.get("outputs", [])}
    rows = max((len(v) for v in outputs.values()), default=0)
    return (
        np.column_stack(
            [
                np.asarray(
                    [np.nan if v is None else v for v in outputs.get(c, [np.nan] * rows)],
                    dtype=np.float64,
                )
                for c in columns
            ]
        )
        if columns
        else np.empty((rows, 0))
    )
