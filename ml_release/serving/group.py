"""Models served side by side for one measurement: started at once, stopped together."""

import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
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
    alone: str | None = None,
) -> Iterator[dict[str, RunningServer]]:
    """Serve each (role, model) of `plan` until the block ends; role -> running server.

    The servers start at once: a start is mostly one core importing the runtime, so two cores
    start two in the time of one. The role named `alone` starts first, by itself, when its load
    time is a measurement a gate judges. When the block ends, however it ends, every server
    started is stopped at once and `workdir`, which holds each server's settings and log, is
    removed.

    Raises:
        ServerStartError: A server did not start (the first in `plan` order that did not);
            every server that did is stopped.
    """
    servers: dict[str, RunningServer] = {}
    waves = [
        [item for item in plan if item[0] == alone],
        [item for item in plan if item[0] != alone],
    ]
    try:
        for wave in filter(None, waves):
            servers.update(_start_at_once(wave, store_root, workdir, options, model_name, progress))
        yield servers
    finally:
        stop_processes(server.process for server in servers.values())
        shutil.rmtree(workdir, ignore_errors=True)


def _start_at_once(
    wave: Sequence[tuple[str, ModelRef]],
    store_root: Path,
    workdir: Path,
    options: ServerOptions,
    model_name: str,
    progress: Callable[[str], None],
) -> dict[str, RunningServer]:
    """Start the servers of `wave` in threads; all of them, or ServerStartError with none left."""
    for role, (version, _folder, _digest) in wave:
        progress(f"starting {role} ({version}) in the serving runtime")

    def start(role: str, ref: ModelRef) -> RunningServer:
        version, folder, digest = ref
        return start_artifact(
            folder, store_root, workdir / role, options, model_name, version, digest=digest
        )

    pool = ThreadPoolExecutor(max_workers=len(wave), thread_name_prefix="server-start")
    futures = {role: pool.submit(start, role, ref) for role, ref in wave}
    pool.shutdown(wait=False)
    try:
        wait(futures.values())
    except BaseException:  # interrupted (a cancelled run): stop each server once it is up
        for future in futures.values():
            future.add_done_callback(_stop_if_started)
        raise
    started = {role: f.result() for role, f in futures.items() if f.exception() is None}
    failed = [(role, f.exception()) for role, f in futures.items() if f.exception() is not None]
    if failed:
        stop_processes(server.process for server in started.values())
        role, error = failed[0]
        if not isinstance(error, ServingError):
            raise error
        raise ServerStartError(role, error)
    for role, server in started.items():
        progress(f"{role} ready in {server.load_seconds:.2f} s")
    return started


def _stop_if_started(future: Future) -> None:
    if not future.cancelled() and future.exception() is None:
        stop_processes([future.result().process])
