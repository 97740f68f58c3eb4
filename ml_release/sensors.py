"""`new_model_artifact_sensor`: one release run per new artifact dropped into `incoming/`.

Each tick copies every complete artifact into the store (idempotent) and requests a run with
`run_key` = digest, pointing at the stored copy; the digest goes into the cursor. Because the
cursor and the run requests are committed together with the tick, a restarted daemon or a
re-evaluated tick never launches a second run for a digest, and a folder leaves `incoming/`
only after the tick that requested its run was committed.
"""

import json
import shutil
import time

import dagster as dg

from ml_release import keys
from ml_release.errors import ReleaseError
from ml_release.home import artifacts_dir, incoming_dir, quarantine_dir
from ml_release.incoming import GRACE_SECONDS, quarantine, scan_incoming
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
