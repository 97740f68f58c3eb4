"""Models served side by side for one measurement: started in turn, stopped together."""

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ml_release.serving.server import (
    RunningServer,
    ServerOptions,
    ServingError,
    start_artifact,
    stop_processes,
)
from ml_release.subjects import ModelRef


class ServerStartError(ServingError):
    """One server of a group did not start; `role` says which."""

    def __init__(self, role: str, error: ServingError):
        super().__init__(str(error))
        self.role = role


@contextmanager
def serve_group(
    plan: Sequence[tuple[str, ModelRef]],
    store_root: Path,
    workdir: Path,
    options: ServerOptions,
    model_name: str,
    progress: Callable[[str], None] = lambda message: None,
) -> Iterator[dict[str, RunningServer]]:
    """Serve each (role, model) of `plan` until the block ends; role -> running server.

    The servers start one after another, so their load times do not overlap. When the block
    ends, however it ends, every server started is stopped at once (a server takes most of a
    second to shut down: one after another, three cost that three times) and `workdir`, which
    holds each server's settings and log, is removed.

    Raises:
        ServerStartError: A server did not start; those started before it are stopped.
    """
    servers: dict[str, RunningServer] = {}
    try:
        for role, (version, folder, digest) in plan:
            progress(f"starting {role} ({version}) in the serving runtime")
            try:
                servers[role] = start_artifact(
                    folder, store_root, workdir / role, options, model_name, version, digest=digest
                )
            except ServingError as exc:
                raise ServerStartError(role, exc) from None
            progress(f"{role} ready in {servers[role].load_seconds:.2f} s")
        yield servers
    finally:
        stop_processes(server.process for server in servers.values())
        shutil.rmtree(workdir, ignore_errors=True)
