"""A canary rollout on one machine: both models served, a router in front, logged traffic replayed.

Traffic is the serving log replayed in time order through `LocalRouter`, sticky by request id;
each request is sent once. When the window runs out before a step has its
`requests_per_step` fresh requests, the canary ends there, `inconclusive: not enough traffic`:
repeating requests would make the confidence sequences too narrow. Every look is a
`canary_step` ledger event with its evidence; a failing or inconclusive rollout is a
`canary_aborted` event, and traffic goes back to production. Promotion after a pass is the
caller's (through the same rules as `release_decision`).

A state file (the `traffic_split` resource's `state_file`, by default
`$ML_RELEASE_HOME/canary/<model>.json`) marks a rollout in progress. A rollout that finds one
from a controller that died records that canary as aborted before it starts:
the local router died with that controller, so its traffic is back on production; a
deployment's split is set back to 0 by the new controller before anything else.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from ml_release.canary.analysis import Look
from ml_release.canary.controller import CanaryResult, NotEnoughTraffic, run_steps
from ml_release.errors import ConflictError
from ml_release.faults import fault_point
from ml_release.gates.result import Verdict
from ml_release.registry import Registry
from ml_release.serving.client import encode_request
from ml_release.serving.replay import replay
from ml_release.serving.router import LocalRouter
from ml_release.serving.server import ServerOptions, serve_artifact
from ml_release.serving.traffic import SplitOpener
from ml_release.shadow.replay import LoggedRequests
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef

ABORTED = "canary_aborted"


@dataclass(frozen=True)
class Candidate:
    """The version under rollout."""

    version: str
    digest: str
    folder: Path


def recover(state_file: Path, registry: Registry, model: str) -> str | None:
    """Record an unfinished rollout of a dead controller as aborted; returns its version.

    Raises:
        ConflictError: The controller of that rollout is still running.
    """
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if psutil.pid_exists(int(state.get("pid", -1))) and state.get("pid") != os.getpid():
        raise ConflictError(
            f"a canary of {model} {state['version']} is running (pid {state['pid']}); "
            "wait for it, or stop that process"
        )
    registry.record(
        model,
        ABORTED,
        version=state["version"],
        digest=state["digest"],
        reason=f"the canary controller stopped at the {state['step']:g} % step without "
        "finishing; traffic returned to production",
        lineage={"recovered_by_pid": os.getpid()},
    )
    state_file.unlink()
    return state["version"]


def _write_state(state_file: Path, candidate: Candidate, step: float) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    partial = state_file.with_suffix(".partial")
    partial.write_text(
        json.dumps(
            {
                "version": candidate.version,
                "digest": candidate.digest,
                "step": step,
                "pid": os.getpid(),
            }
        )
    )
    partial.replace(state_file)


def traffic_plan(
    requests: LoggedRequests, contract: dict[str, str], per_step: int, steps: int
) -> tuple[list[bytes], list[str], dict[str, Any]]:
    """Bodies and request ids in log order, each request once, and labels by request id.

    At most `per_step * steps` requests; fewer when the window is shorter (never cycled).
    """
    bodies, ids, labels = [], [], {}
    for i in range(min(per_step * steps, len(requests))):
        request_id = requests.request_ids[i]
        bodies.append(encode_request(requests.raw.iloc[[i]], contract))
        ids.append(request_id)
        label = requests.labels[i]
        if not pd.isna(label):  # the label has arrived
            labels[request_id] = label.item() if hasattr(label, "item") else label
    return bodies, ids, labels


def rollout(
    spec: ReleaseSpec,
    registry: Registry,
    candidate: Candidate,
    production: ModelRef,
    store_root: Path,
    requests: LoggedRequests,
    contract: dict[str, str],
    options: ServerOptions,
    workdir: Path,
    state_file: Path,
    progress: Callable[[str], None] = lambda message: None,
    on_look: Callable[[Look], None] = lambda look: None,
    open_split: SplitOpener = LocalRouter,
) -> CanaryResult:
    """Run the canary of `candidate` against `production`; records steps and aborts.

    The traffic goes through the split `open_split` opens between the two servers (the local
    router by default; the `traffic_split` resource in a Dagster run).
    """
    settings, model = spec.canary, spec.model.name
    recovered = recover(state_file, registry, model)
    if recovered:
        progress(f"recorded the unfinished canary of {recovered} as aborted")
    per_step = settings.requests_per_step
    bodies, ids, labels = traffic_plan(requests, contract, per_step, len(settings.steps))
    _write_state(state_file, candidate, 0.0)
    with (
        _serve(production, store_root, workdir / "production", options, model) as prod,
        _serve(candidate, store_root, workdir / "candidate", options, model) as cand,
        open_split(prod.port, cand.port, model, settings.timeout_seconds) as router,
    ):

        def send(index: int) -> None:
            step = settings.steps[index]
            left = len(bodies) - index * per_step
            if left < per_step:
                raise NotEnoughTraffic(
                    f"it needs {per_step} fresh logged requests and {max(left, 0)} are left in "
                    f"the window of {len(bodies)}; replay a longer serving log or lower "
                    "canary.requests_per_step (requests are never repeated)"
                )
            _write_state(state_file, candidate, step)
            progress(f"step {index + 1}/{len(settings.steps)}: {step:g} % to the candidate")
            # Where a test (or the demo) injects a fault, such as the candidate's server dying.
            fault_point("canary:before_step", step=step, candidate_server=cand, log=progress)
            window = slice(index * per_step, (index + 1) * per_step)
            replay(
                router.url,
                bodies[window],
                ids[window],
                settings.concurrency,
                model=model,
                timeout_s=settings.timeout_seconds + 30,
            )

        def look_done(look: Look) -> None:
            _record_look(registry, spec, candidate, look)
            progress(f"{look.step:g} % step: {look.decision.value} ({'; '.join(look.reasons)})")
            on_look(look)

        try:
            result = run_steps(router, send, settings, labels, look_done, spec.model.task)
        except Exception as exc:
            _record(registry, spec, candidate, ABORTED, [], reason=f"the canary failed: {exc}")
            state_file.unlink(missing_ok=True)
            raise
    if result.verdict is not Verdict.PASS:
        rows = result.looks[-1].rows() if result.looks else []
        _record(registry, spec, candidate, ABORTED, rows, reason=result.reason)
    state_file.unlink(missing_ok=True)
    return result


def _serve(
    ref: Candidate | ModelRef, store_root: Path, folder: Path, options: ServerOptions, model: str
):
    """One verified artifact served from `folder` (a context manager)."""
    return serve_artifact(
        ref.folder, store_root, folder, options, model, ref.version, digest=ref.digest
    )


def _record_look(registry: Registry, spec: ReleaseSpec, candidate: Candidate, look: Look) -> None:
    reason = f"{look.step:g} %: {look.decision.value}; " + "; ".join(look.reasons)
    lineage = {"served": look.served}
    _record(registry, spec, candidate, "canary_step", look.rows(), reason=reason, lineage=lineage)


def _record(
    registry: Registry, spec: ReleaseSpec, candidate: Candidate, event: str, rows: list, **fields
) -> None:
    """One ledger event of this canary's candidate (`canary_step` or `canary_aborted`)."""
    registry.record(
        spec.model.name,
        event,
        version=candidate.version,
        digest=candidate.digest,
        spec_hash=spec.spec_hash,
        verdicts=rows,
        **fields,
    )
