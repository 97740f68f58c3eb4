"""Sensors: a release run per new model artifact, and the ledger entry of a blocked run.

`new_model_artifact_sensor`: one release run per new artifact dropped into `incoming/`. Each
tick copies every complete artifact into the store (idempotent) and requests a run with
`run_key` = digest, pointing at the stored copy; the digest goes into the cursor. Because the
cursor and the run requests are committed together with the tick, a restarted daemon or a
re-evaluated tick never launches a second run for a digest, and a folder leaves `incoming/`
only after the tick that requested its run was committed.

`blocked_release_sensor`: the ledger's `blocked` event for runs launched from the UI or by the
sensor above (`ml-release run` records its own).
"""

import json
import shutil
import time

import dagster as dg

from ml_release import keys
from ml_release.errors import ReleaseError
from ml_release.home import artifacts_dir, incoming_dir, quarantine_dir, registry_path
from ml_release.incoming import GRACE_SECONDS, quarantine, scan_incoming
from ml_release.jobs import outcome_of_run
from ml_release.promotion import record_blocked
from ml_release.registry import Registry
from ml_release.store import store_artifact

MAX_REMEMBERED = 10_000


def _load_cursor(cursor: str | None) -> tuple[list[str], dict[str, float]]:
    data = json.loads(cursor) if cursor else {}
    return list(data.get("requested", [])), dict(data.get("first_seen", {}))


@dg.sensor(
    name=keys.ARTIFACT_SENSOR,
    job_name=keys.RELEASE_JOB,
    minimum_interval_seconds=15,
    description="Gates every complete model artifact published into ML_RELEASE_HOME/incoming.",
)
def new_model_artifact_sensor(context: dg.SensorEvaluationContext):
    """One release run per new artifact digest in `incoming/`; invalid ones are quarantined."""
    requested, first_seen = _load_cursor(context.cursor)
    scan = scan_incoming(
        incoming_dir(), quarantine_dir(), set(requested), first_seen, time.time(), GRACE_SECONDS
    )
    for folder, reason in scan.quarantined:
        context.log.warning(f"quarantined {folder.name}: {reason}")
    for folder, reason in scan.waiting:
        context.log.info(f"waiting for {folder.name}: {reason}")
    for folder in scan.done:
        shutil.rmtree(folder, ignore_errors=True)  # its run was requested by a committed tick
    runs, quarantined = [], len(scan.quarantined)
    for manifest, folder in scan.ready:
        if manifest.sha256 in requested:
            continue  # the same model under a second name: one run per digest
        try:
            _, stored = store_artifact(folder, artifacts_dir())
        except ReleaseError as exc:  # e.g. a version reused with another digest
            target = quarantine(folder, str(exc), quarantine_dir())
            context.log.warning(f"quarantined {folder.name} as {target.name}: {exc}")
            quarantined += 1
            continue
        runs.append(
            dg.RunRequest(
                run_key=manifest.sha256,
                run_config={"ops": {keys.CANDIDATE_MODEL: {"config": {"artifact": str(stored)}}}},
                tags={
                    "ml_release/candidate_digest": manifest.sha256,
                    "ml_release/candidate_version": manifest.version,
                },
            )
        )
        requested.append(manifest.sha256)
    context.update_cursor(
        json.dumps({"requested": requested[-MAX_REMEMBERED:], "first_seen": scan.first_seen})
    )
    if not runs:
        return dg.SkipReason(
            f"no new artifact ({len(scan.waiting)} waiting, {quarantined} quarantined)"
        )
    return runs


def build_blocked_run_sensor(model: str, spec_hash: str) -> dg.SensorDefinition:
    """A run-failure sensor that records a gate-blocked release run in the ledger.

    `release_decision` records promotions and refusals, but when a blocking gate stops the run
    it never runs. `ml-release run` records that block itself; this sensor does it for runs
    launched from the UI or by `new_model_artifact_sensor` (once per run either way).
    """

    @dg.run_failure_sensor(
        name=keys.BLOCKED_RUN_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records in the ledger which gates blocked a failed release run.",
    )
    def blocked_release_sensor(context: dg.RunFailureSensorContext):
        """Ledger `blocked` for a release run that a blocking gate stopped."""
        run = context.dagster_run
        if run.job_name != keys.RELEASE_JOB:
            return
        outcome = outcome_of_run(context.instance, run.run_id)
        event = record_blocked(Registry(registry_path()), model, spec_hash, outcome)
        if event is not None:
            context.log.info(f"ledger: {model} {event.version} {event.reason}")

    return blocked_release_sensor
