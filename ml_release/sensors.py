"""Sensors: a release run per new model artifact, and the ledger entry of a stopped run.

`new_model_artifact_sensor`: one release run per new artifact dropped into `incoming/`. Each
tick admits every complete artifact (refused at the door when unsafe: quarantined, `refused`
in the ledger), adds its digest as a partition of its model and requests the run for that
partition with `run_key` = "<model>:<digest>", pointing at the folder; the run itself moves it
into the store. The run key goes into the cursor. Because the cursor, the new partitions and
the run requests are committed together with the tick, a restarted daemon or a re-evaluated
tick never launches a second run for an artifact.

`blocked_release_sensor`: the ledger's `blocked` (or `errored`) event for runs launched from
the UI or by the sensor above that stopped before their decision (`ml-release run` records
its own).
"""

import json
import shutil
import time
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.errors import ConflictError, IntegrityError
from ml_release.incoming import GRACE_SECONDS, run_key, scan_incoming
from ml_release.intake import WrongModelError, admit, refuse
from ml_release.jobs import outcome_of_run
from ml_release.promotion import record_outcome
from ml_release.resource_types import ArtifactInbox, RegistrySource
from ml_release.spec import ReleaseSpec

MAX_REMEMBERED = 10_000


def _load_cursor(cursor: str | None) -> tuple[list[str], dict[str, float]]:
    data = json.loads(cursor) if cursor else {}
    return list(data.get("requested", [])), dict(data.get("first_seen", {}))


def _admit_routed(manifest, folder, spec: ReleaseSpec | None, registry, quarantine, known) -> None:
    """Screen `folder` for the spec it is routed to; refused: quarantined, ledger, raised.

    An artifact of a model no spec of the location gates (`spec` None) is refused under the
    name its manifest gives.
    """
    if spec is None:
        error = WrongModelError(
            f"{folder.name}/manifest.json names model {manifest.name!r}, which no release spec "
            f"of this location gates ({', '.join(known)})"
        )
        refuse(folder, error, manifest.name, registry, quarantine, source="sensor", copy=False)
        raise error
    admit(
        folder,
        spec.model.name,
        registry,
        quarantine,
        source="sensor",
        copy=False,
        trusted=spec.trusted_types,
    )


def _run_request(spec: ReleaseSpec, job: Any, manifest, folder) -> dg.RunRequest:
    """The release run of one artifact: its digest is the partition, `run_key` its model's."""
    return dg.RunRequest(
        run_key=run_key(manifest),
        job_name=job.name,
        partition_key=manifest.sha256,
        run_config={
            "ops": {spec.named(keys.CANDIDATE_MODEL): {"config": {"artifact": str(folder)}}}
        },
        tags={keys.CANDIDATE_VERSION: manifest.version},
    )


def _tick_result(runs: dict[str, list[dg.RunRequest]], cursor: str, why: str) -> dg.SensorResult:
    """The tick's runs with their new partitions, committed together; `why` when none."""
    if not runs:
        return dg.SensorResult(skip_reason=why, cursor=cursor)
    return dg.SensorResult(
        run_requests=[run for model_runs in runs.values() for run in model_runs],
        cursor=cursor,
        dynamic_partitions_requests=[
            dg.AddDynamicPartitionsRequest(
                partitions_def_name=keys.candidates_partitions(model),
                partition_keys=[run.partition_key for run in model_runs],
            )
            for model, model_runs in runs.items()
        ],
    )


def build_artifact_sensor(models: list[tuple[ReleaseSpec, Any]]) -> dg.SensorDefinition:
    """`new_model_artifact_sensor` for the location's models: (spec, its release job) each.

    Every artifact goes to the release job of the model its manifest names; one no spec of the
    location gates is refused at the door (quarantined, `refused` in the ledger under that
    name). With one spec, an artifact of another model is refused by `admit` as before.
    """
    by_name = {spec.model.name: (spec, job) for spec, job in models}
    only = models[0] if len(models) == 1 else (None, None)

    @dg.sensor(
        name=keys.ARTIFACT_SENSOR,
        jobs=[job for _spec, job in models],
        minimum_interval_seconds=15,
        description="Gates every complete model artifact published into ML_RELEASE_HOME/incoming.",
    )
    def new_model_artifact_sensor(
        context: dg.SensorEvaluationContext,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_inbox: dg.ResourceParam[ArtifactInbox],
    ) -> dg.SensorResult:
        """One release run per new artifact digest in `incoming/`; unsafe ones are refused."""
        registry = model_registry.get()
        incoming, quarantine = artifact_inbox.folders()
        requested, first_seen = _load_cursor(context.cursor)
        scan = scan_incoming(
            incoming, quarantine, set(requested), first_seen, time.time(), GRACE_SECONDS
        )
        for folder, reason in scan.quarantined:
            context.log.warning(f"quarantined {folder.name}: {reason}")
        for folder, reason in scan.waiting:
            context.log.info(f"waiting for {folder.name}: {reason}")
        for folder in scan.done:
            name, digest = _identity(folder)
            if digest and registry.by_digest(name, digest) is not None:
                shutil.rmtree(folder, ignore_errors=True)  # its run stored a copy already
        runs: dict[str, list[dg.RunRequest]] = {}
        refused = len(scan.quarantined)
        for manifest, folder in scan.ready:
            if run_key(manifest) in requested:
                continue  # the same artifact in a second folder: one run per model and digest
            spec, job = by_name.get(manifest.name) or only
            try:
                _admit_routed(manifest, folder, spec, registry, quarantine, by_name)
            except (IntegrityError, ConflictError) as exc:
                context.log.warning(f"refused {folder.name}: {exc}")
                refused += 1
                continue
            runs.setdefault(spec.model.name, []).append(_run_request(spec, job, manifest, folder))
            requested.append(run_key(manifest))
        cursor = json.dumps(
            {"requested": requested[-MAX_REMEMBERED:], "first_seen": scan.first_seen}
        )
        why = f"no new artifact ({len(scan.waiting)} waiting, {refused} quarantined)"
        return _tick_result(runs, cursor, why)

    return new_model_artifact_sensor


def _identity(folder) -> tuple[str, str | None]:
    """(model name, digest) of an artifact folder's manifest; ("", None) when unreadable."""
    from ml_release.artifacts import read_manifest

    try:
        manifest = read_manifest(folder)
    except (IntegrityError, OSError):
        return "", None
    return manifest.name, manifest.sha256


def build_blocked_run_sensor(spec: ReleaseSpec, release_job) -> dg.SensorDefinition:
    """A run-failure sensor that records a blocked or failed release run in the ledger.

    `release_decision` records promotions, refusals and stale verdicts, but when a blocking
    gate (or an error) stops the run it never runs. `ml-release run` records that itself; this
    sensor does it for runs launched from the UI or by `new_model_artifact_sensor` (once per
    run either way).
    """
    model = spec.model.name

    @dg.run_failure_sensor(
        name=spec.named(keys.BLOCKED_RUN_SENSOR),
        monitored_jobs=[release_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records in the ledger which gates blocked (or what error stopped) a failed "
        "release run.",
    )
    def blocked_release_sensor(
        context: dg.RunFailureSensorContext, model_registry: dg.ResourceParam[RegistrySource]
    ):
        """Ledger `blocked` or `errored` for a release run that stopped before its decision."""
        outcome = outcome_of_run(context.instance, context.dagster_run.run_id)
        registry = model_registry.get()
        event = record_outcome(registry, model, spec.spec_hash, outcome)
        if event is not None:
            context.log.info(f"ledger: {model} {event.version} {event.event}: {event.reason}")

    return blocked_release_sensor
