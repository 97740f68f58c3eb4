"""`ml-release serve`: the production alias served by the runtime, following promotions.

The server answers on 127.0.0.1 (V2 REST: `/v2/models/<name>/infer`, `/v2/health/ready`;
Prometheus metrics on the metrics port). Every `poll_seconds` the registry file is looked at;
when it changed and `production` names another version — a promotion or a rollback — the
model is reloaded in place (MLServer loads the new artifact through the safe loader, then
swaps it in; if the load fails the old model keeps serving and the failure is logged).
"""

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ml_release.errors import NotFoundError, ReleaseError
from ml_release.registry import PRODUCTION, Registry
from ml_release.serving.client import V2Client
from ml_release.serving.server import (
    RunningServer,
    ServerOptions,
    ServingError,
    serve_artifact,
)
from ml_release.subjects import model_ref


def _stamp(path: Path | None) -> tuple:
    # A file registry changes its file on every write; a server registry is polled each time.
    if path is None:
        return (time.monotonic(),)
    stamps = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            info = file.stat()
            stamps.append((info.st_mtime_ns, info.st_size))
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)


def reload(server: RunningServer, model: str, artifact: Path, digest: str | None = None) -> str:
    """Point the server's model at `artifact` and reload it; returns the version now served.

    `digest` is the registry's: the runtime refuses an artifact whose bytes do not have it.

    Raises:
        ServingError: The runtime refused the new artifact (the old model keeps serving).
    """
    settings_file = server.folder / model / "model-settings.json"
    settings = json.loads(settings_file.read_text())
    settings["parameters"]["uri"] = str(artifact)
    settings["parameters"]["extra"]["sha256"] = digest
    settings_file.write_text(json.dumps(settings, indent=2))
    client = V2Client(server.port, timeout=300)
    try:
        status, content, _ = client.call("POST", f"/v2/repository/models/{model}/load")
        if status != 200:
            raise ServingError(f"reload of {artifact.name} refused: HTTP {status}: {content!r}")
        return client.metadata(model)["parameters"]["ml_release"]["artifact_version"]
    finally:
        client.close()


def serve_production(
    registry: Registry,
    store_root: Path,
    model: str,
    options: ServerOptions,
    folder: Path,
    ports: tuple[int, int],
    stop: threading.Event,
    log: Callable[[str], None] = print,
    poll_seconds: float = 2.0,
) -> None:
    """Serve `production` of `model` until `stop` is set, reloading when the alias moves.

    Raises:
        NotFoundError: There is no production version yet.
        ServingError: The server did not start, or died.
    """
    version = registry.alias(model, PRODUCTION)
    if version is None:
        raise NotFoundError(
            f"{model} has no production version yet: run a release (`ml-release run`) first"
        )
    ref = model_ref(registry, store_root, model, version)
    with serve_artifact(
        ref.folder, store_root, folder, options, model, version, ports, digest=ref.digest
    ) as server:
        log(
            f"serving {model} {version} on {server.url}/v2/models/{model}/infer "
            f"(ready: {server.url}/v2/health/ready; metrics: "
            f"http://127.0.0.1:{server.metrics_port}/metrics)"
        )
        stamp = _stamp(registry.path)
        # sleep, not stop.wait: a signal handler may set `stop` while this thread waits, and
        # Event.wait holds the lock Event.set needs.
        while not stop.is_set():
            time.sleep(poll_seconds)
            if server.process.poll() is not None:
                raise ServingError(f"the model server exited. Its log ends:\n{server.log_tail()}")
            now = _stamp(registry.path)
            if now == stamp:
                continue
            stamp = now
            live = registry.alias(model, PRODUCTION)
            if live is None or live == version:
                continue
            try:
                target = model_ref(registry, store_root, model, live)
                served = reload(server, model, target.folder, target.digest)
            except (ServingError, ReleaseError) as exc:
                log(f"production moved to {live}, reload failed; still serving {version}: {exc}")
                continue
            log(f"production moved {version} -> {live}: reloaded, now serving {served}")
            version = served
