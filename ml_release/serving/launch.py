"""Start MLServer on a settings folder, with the limits ml-release adds (runtime env only).

    python -m ml_release.serving.launch FOLDER --parent-pid PID --max-request-bytes N

Adds to MLServer's REST app: a request-size limit (413 with a JSON error, checked before the
body is parsed) and validation errors reported as `{"error": "<field path>: <problem>"}`,
the same shape as MLServer's own errors. The server exits when the process that started it is
gone, so a killed release run cannot leave servers behind.
"""

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

# SciPy's special functions first, on purpose (ml_release.skops_order): a server start took
# 2.71 s to ready with MLServer imported first, 2.32 with skops first, 0.35 s less again with
# scipy.special first (medians of six interleaved starts on 2 cores).
import ml_release.skops_order  # noqa: F401

# isort: split
import mlserver.rest.server
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mlserver.cli.main import root

WATCH_SECONDS = 0.5


class BodyLimit:
    """ASGI middleware refusing request bodies larger than `limit` bytes with a 413."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on, or answer 413 once its body passes the limit."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, int(declared))
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge(received)
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge as exc:
            await self._refuse(send, exc.size)

    async def _refuse(self, send: Any, size: int) -> None:
        response = JSONResponse(
            {
                "error": f"body: request of {size} bytes is larger than the server's limit of "
                f"{self.limit} bytes (max_request_bytes); split the batch"
            },
            status_code=413,
        )
        await response({"type": "http"}, None, send)


class _TooLarge(Exception):
    def __init__(self, size: int):
        self.size = size


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse({"error": "; ".join(problems[:5]) or "invalid request"}, status_code=422)


def _patch(limit: int) -> None:
    original = mlserver.rest.server.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.add_middleware(BodyLimit, limit=limit)
        return app

    mlserver.rest.server.create_app = create_app


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Run MLServer with the limits until it is stopped."""
    parser = argparse.ArgumentParser(prog="python -m ml_release.serving.launch")
    parser.add_argument("folder")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--max-request-bytes", type=int, default=64 * 1024**2)
    args = parser.parse_args(argv)
    _patch(args.max_request_bytes)
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    root.main(["start", args.folder], prog_name="mlserver", standalone_mode=True)


if __name__ == "__main__":
    main(sys.argv[1:])
