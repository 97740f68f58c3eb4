"""Running a release job in this process (or on workers), and reading its outcome."""

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.jobs.instance import add_candidate, ensure_instance
from ml_release.jobs.pool import free_abandoned, prepare_pool, process_tags, run_control
from ml_release.jobs.production import sync_production
from ml_release.outcome import ReleaseOutcome, outcome_from_events
from ml_release.run_watch import watched_run
from ml_release.spec import ReleaseSpec

DEFAULT_MAX_WAIT = 900.0  # seconds a run may wait for a pool slot before giving up


def execute_release(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    spec: ReleaseSpec,
    digest: str,
    candidate_artifact: str = "",
    log_level: str = "CRITICAL",
    job: str = keys.RELEASE_JOB,
    progress: Callable[[str], None] = lambda line: None,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> ReleaseOutcome:
    """Run the release (or canary) job for candidate `digest` in this process.

    Slots of the warehouse pool left by runs whose process is gone are freed first. While the
    run waits for a slot another run holds, `progress` says which run and for how long; after
    `max_wait` seconds it gives up (WaitedTooLong, exit 3). SIGINT and SIGTERM stop it cleanly:
    the run is marked canceled, its slots freed (Interrupted, exit 130 / 143).

    Steps run on Celery workers when a broker is configured: workers rebuild the job from the
    spec file, so `defs` serves in-process runs only.
    """
    add_candidate(instance, spec.model.name, digest)
    prepare_pool(instance, spec.named(keys.WAREHOUSE_POOL))
    for line in free_abandoned(instance):
        progress(line)
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if job == keys.RELEASE_JOB and candidate_artifact:
        op = spec.named(keys.CANDIDATE_MODEL)  # a prefixed asset's op: `<model>__candidate_model`
        run_config["ops"] = {op: {"config": {"artifact": candidate_artifact}}}
    if os.environ.get(keys.CELERY_BROKER_ENV) and not instance.is_ephemeral:
        from ml_release.definitions import execute_on_workers  # workers reach no ephemeral one

        return outcome_of_run(instance, execute_on_workers(instance, spec, digest, run_config, job))
    run_id = str(uuid.uuid4())
    result = watched_run(
        lambda: defs.resolve_job_def(spec.named(job)).execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            partition_key=digest,
            run_id=run_id,
            tags=process_tags(),
        ),
        run_control(instance),
        run_id,
        progress,
        max_wait,
    )
    outcome = outcome_from_events(result.run_id, result.all_events)
    outcome.partition = digest
    return outcome


def release_in_process(
    spec: ReleaseSpec,
    candidate: Path | None = None,
    defs: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = lambda line: None,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> ReleaseOutcome:
    """What `ml-release run` does: prepare the candidate, gate it in its own run, record.

    The candidate is trained from the spec, or `candidate` (an artifact folder, or for an LLM
    spec a prompt/config file) is admitted; it is registered before the run starts, so the run
    is launched for its digest. A run stopped by a gate or an error is recorded in the ledger,
    and `production_model` catches up with the ledger.
    """
    from ml_release.candidates import prepare_candidate
    from ml_release.home import artifacts_dir, dagster_home, quarantine_dir
    from ml_release.promotion import record_outcome
    from ml_release.registry import open_registry

    if defs is None:
        from ml_release.definitions import build_definitions

        defs = build_definitions(spec)
    instance = instance or ensure_instance(dagster_home())
    registry = open_registry()
    prepared = prepare_candidate(spec, candidate, artifacts_dir(), registry, quarantine_dir())
    outcome = execute_release(
        defs, instance, spec, prepared.digest, progress=progress, max_wait=max_wait
    )
    outcome.prepared = f"{prepared.version} (sha256 {prepared.digest[:12]}, {prepared.source})"
    record_outcome(registry, spec.model.name, spec.spec_hash, outcome)
    sync_production(
        instance, registry, spec.model.name, artifacts_dir(), spec.key(keys.PRODUCTION_MODEL)
    )
    return outcome


def outcome_of_run(instance: dg.DagsterInstance, run_id: str) -> ReleaseOutcome:
    """The outcome of a finished run from the instance's event log (UI and sensor runs)."""
    entries = instance.all_logs(run_id)
    outcome = outcome_from_events(run_id, [e.dagster_event for e in entries if e.dagster_event])
    run = instance.get_run_by_id(run_id)
    outcome.partition = (run.tags.get(keys.PARTITION_TAG, "") if run else "") or ""
    return outcome


def execute_in_ephemeral_instance(
    defs: dg.Definitions,
    spec: ReleaseSpec,
    candidate_artifact: str,
    canary: bool = False,
    before_canary: Callable[[], None] = lambda: None,
) -> tuple[ReleaseOutcome, ReleaseOutcome | None]:
    """The release job on a throwaway in-memory instance (coverage runs: nothing persists).

    The candidate is the artifact folder `candidate_artifact`; the run is its partition. With
    `canary`, a candidate the release gated ("awaiting canary") then goes through the canary
    job on the same instance, after `before_canary()`.
    """
    from ml_release.artifacts import read_manifest

    digest = read_manifest(Path(candidate_artifact)).sha256
    with dg.DagsterInstance.ephemeral() as instance:
        release = execute_release(defs, instance, spec, digest, candidate_artifact)
        if not canary or release.decision.get("decision") != "awaiting canary":
            return release, None
        before_canary()
        return release, execute_release(defs, instance, spec, digest, job=keys.CANARY_JOB)


def execute_for_coverage(
    spec: ReleaseSpec,
    candidate_folder: Path,
    *,
    canary: bool = False,
    before_canary: Callable[[], None] = lambda: None,
    responses: Path | None = None,
) -> tuple[ReleaseOutcome, ReleaseOutcome | None]:
    """The release execution the coverage runner is given: one ephemeral run per mode.

    `responses` (LLM specs): the recorded answers the run's LLM client replays.
    """
    from ml_release.definitions import build_definitions, build_replay_definitions

    defs = build_replay_definitions(spec, responses) if responses else build_definitions(spec)
    return execute_in_ephemeral_instance(defs, spec, str(candidate_folder), canary, before_canary)
