"""Sensors: a release run per new model artifact, and the ledger entry of a stopped run.

`new_model_artifact_sensor`: one release run per new artifact dropped into `incoming/`. Each
tick admits every complete artifact (refused at the door when unsafe: quarantined, `refused`
in the ledger), adds its digest as a partition and requests the run for that partition with
`run_key` = digest, pointing at the folder; the run itself moves it into the store. The digest
goes into the cursor. Because the cursor, the new partitions and the run requests are
committed together with the tick, a restarted daemon or a re-evaluated tick never launches a
second run for a digest.

`blocked_release_sensor`: the ledger's `blocked` (or `errored`) event for runs launched from
the UI or by the sensor above that stopped before their decision (`ml-release run` records
its own).
"""

import json
import shutil
import time

import dagster as dg

from ml_release import keys
from ml_release.errors import ConflictError, IntegrityError
from ml_release.incoming import GRACE_SECONDS, scan_incoming
from ml_release.intake import admit
from ml_release.jobs import outcome_of_run
from ml_release.promotion import record_outcome
from ml_release.resource_types import ArtifactInbox, RegistrySource
from ml_release.spec import ReleaseSpec

MAX_REMEMBERED = 10_000


def _load_cursor(cursor: str | None) -> tuple[list[str], dict[str, float]]:
    data = json.loads(cursor) if cursor else {}
    return list(data.get("requested", [])), dict(data.get("first_seen", {}))


def build_artifact_sensor(spec: ReleaseSpec) -> dg.SensorDefinition:
    """`new_model_artifact_sensor` for `spec`'s model."""
    model = spec.model.name

    @dg.sensor(
        name=keys.ARTIFACT_SENSOR,
        job_name=keys.RELEASE_JOB,
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
            digest = _digest_of(folder)
            if digest and registry.by_digest(model, digest) is not None:
                shutil.rmtree(folder, ignore_errors=True)  # its run stored a copy already
        runs, refused = [], len(scan.quarantined)
        for manifest, folder in scan.ready:
            if manifest.sha256 in requested:
                continue  # the same model under a second name: one run per digest
            try:
                admit(
                    folder,
                    model,
                    registry,
                    quarantine,
                    source="sensor",
                    copy=False,
                    trusted=spec.trusted_types,
                )
            except (IntegrityError, ConflictError) as exc:
                context.log.warning(f"refused {folder.name}: {exc}")
                refused += 1
                continue
            runs.append(
                dg.RunRequest(
                    run_key=manifest.sha256,
                    partition_key=manifest.sha256,
                    run_config={
                        "ops": {keys.CANDIDATE_MODEL: {"config": {"artifact": str(folder)}}}
                    },
                    tags={keys.CANDIDATE_VERSION: manifest.version},
                )
            )
            requested.append(manifest.sha256)
        cursor = json.dumps(
            {"requested": requested[-MAX_REMEMBERED:], "first_seen": scan.first_seen}
        )
        if not runs:
            return dg.SensorResult(
                skip_reason=f"no new artifact ({len(scan.waiting)} waiting, {refused} quarantined)",
                cursor=cursor,
            )
        return dg.SensorResult(
            run_requests=runs,
            cursor=cursor,
            dynamic_partitions_requests=[
                dg.AddDynamicPartitionsRequest(
                    partitions_def_name=keys.candidates_partitions(model),
                    partition_keys=[run.partition_key for run in runs],
                )
            ],
        )

    return new_model_artifact_sensor


def _digest_of(folder) -> str | None:
    from ml_release.artifacts import read_manifest

    try:
        return read_manifest(folder).sha256
    except (IntegrityError, OSError):
        return None


def build_blocked_run_sensor(spec: ReleaseSpec, release_job) -> dg.SensorDefinition:
    """A run-failure sensor that records a blocked or failed release run in the ledger.

    `release_decision` records promotions, refusals and stale verdicts, but when a blocking
    gate (or an error) stops the run it never runs. `ml-release run` records that itself; this
    sensor does it for runs launched from the UI or by `new_model_artifact_sensor` (once per
    run either way).
    """
    model = spec.model.name

    @dg.run_failure_sensor(
        name=keys.BLOCKED_RUN_SENSOR,
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
