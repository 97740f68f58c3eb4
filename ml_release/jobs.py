"""Running the release jobs, and the one small adapter over the Dagster instance's API.

A release run gates one candidate: it is launched for the candidate's partition (its digest),
which the launcher adds first. `execute_release` (the CLI, the coverage runner) executes it in
a worker thread watched by `ml_release.run_watch`. Here too: the local instance shared with
`dg dev`; every gate verdict recorded for a candidate (promotion re-reads them); the warehouse
pool's holders and the slots of dead runs, through `instance.event_log_storage` (the calls
of Dagster's own `dagster instance concurrency`; `tests/test_pool_recovery.py` fails loudly if
an upgrade changes them); `production_model` materializations, one per ledger event that moved
production, caught up after a crash. The jobs themselves are built in `ml_release.definitions`.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.home import INSTANCE_CONFIG
from ml_release.outcome import ReleaseOutcome, outcome_from_events
from ml_release.promotion import GateVerdict
from ml_release.registry import PRODUCTION_EVENTS, Event, RegistryReads
from ml_release.run_watch import (
    HOST_TAG,
    PID_TAG,
    PoolState,
    RunControl,
    process_gone,
    process_tags,
    watched_run,
)
from ml_release.spec import ReleaseSpec


# -- the instance: local, candidates' partitions, recorded verdicts ---------------------------
def ensure_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The persistent local Dagster instance, created with the warehouse pool limit if new."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    return dg.DagsterInstance.from_config(str(dagster_home))


def add_candidate(instance: dg.DagsterInstance, model: str, digest: str) -> None:
    """Make `digest` a partition of `model`'s release assets (idempotent)."""
    name = keys.candidates_partitions(model)
    if not instance.has_dynamic_partition(name, digest):
        instance.add_dynamic_partitions(name, [digest])


def _value(metadata: dict, key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def recorded_verdicts(
    instance: dg.DagsterInstance, digest: str
) -> dict[tuple[str, str], list[GateVerdict]]:
    """Every check evaluation for `digest`, by (dataset, gate id), from its partition's runs."""
    runs = instance.get_run_records(dg.RunsFilter(tags={keys.PARTITION_TAG: digest}))
    history: dict[tuple[str, str], list[GateVerdict]] = {}
    for record in runs:
        run_id = record.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            metadata = evaluation.metadata
            baseline = _value(metadata, keys.BASELINE_DIGEST)
            data_version = _value(metadata, keys.DATA_VERSION)
            verdict = GateVerdict(  # `gate` is the check name: the gate entry's id
                dataset=evaluation.asset_key.path[-1],  # the asset's name, under any prefix
                gate=evaluation.check_name,
                passed=evaluation.passed,
                verdict=str(_value(metadata, "verdict") or evaluation.passed),
                candidate_digest=_value(metadata, keys.CANDIDATE_DIGEST),
                spec_hash=_value(metadata, keys.SPEC_HASH),
                evaluated_at=entry.timestamp,
                run_id=run_id,
                baseline_digest=None if baseline in (None, "n/a") else baseline,
                data_version=None if data_version in (None, "unknown") else data_version,
                eval_set=_value(metadata, keys.EVAL_SET),
            )
            history.setdefault((verdict.dataset, verdict.gate), []).append(verdict)
    return history


# -- the warehouse pool ------------------------------------------------------------------------


def prepare_pool(instance: dg.DagsterInstance, pool: str, attempts: int = 5) -> None:
    """Create `pool`'s limit before the run's steps claim it.

    Dagster creates a new pool's limit when a step first claims it, in a transaction that fails
    on PostgreSQL ("current transaction is aborted") when two runs claim the new pool at once:
    the run fails before any step. A release creates its pool first; when another process
    created it in between, the next look finds it.
    """
    from sqlalchemy.exc import DBAPIError

    storage = instance.event_log_storage
    if instance.global_op_concurrency_default_limit is None:
        return  # pools without a configured limit are not created
    for attempt in range(attempts):
        if pool in {limit.name for limit in storage.get_pool_limits()}:
            return
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except DBAPIError:
            time.sleep(0.05 * (attempt + 1))  # another process created it: look again


def pool_states(instance: dg.DagsterInstance) -> list[PoolState]:
    """Every concurrency pool's holders and waiters (run ids), read in one batch of queries."""
    storage = instance.event_log_storage
    infos = storage.get_concurrency_infos(list(storage.get_concurrency_keys()))
    states = []
    for pool, info in sorted(infos.items()):
        holders = sorted({slot.run_id for slot in info.claimed_slots})
        waiting = sorted({step.run_id for step in info.pending_steps} - set(holders))
        states.append(PoolState(pool, holders, waiting))
    return states


def free_abandoned(instance: dg.DagsterInstance, force: set[str] = frozenset()) -> list[str]:
    """Free pool slots left by runs that cannot release them; lines saying what was done.

    A slot is abandoned when its run finished (the daemon frees those only after a while, and
    not at all when it is not running), or when its run was executed in-process by a process
    on this host that is gone (killed, out of memory). Runs in `force` (a run id the user
    named, stuck in a way this machine cannot see) are marked canceled and freed too.
    """
    storage = instance.event_log_storage
    done = []
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is None:
            storage.free_concurrency_slots_for_run(run_id)
            done.append(f"freed the slots of run {run_id}, which no longer exists")
        elif run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            done.append(f"freed the slots of run {run_id}, finished ({run.status.value})")
        elif process_gone(run.tags) or run_id in force:
            why = (
                f"its process {run.tags.get(PID_TAG)} is gone"
                if run_id not in force
                else "named with --run"
            )
            instance.report_run_failed(run, f"ml-release: {why}; its pool slots were freed")
            storage.free_concurrency_slots_for_run(run_id)
            done.append(f"marked run {run_id} failed and freed its slots: {why}")
    return done


def run_records(instance: dg.DagsterInstance, run_id: str, cursor: str | None) -> tuple:
    """A run's event log entries after `cursor`, and the cursor after them."""
    found = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
    return [record.event_log_entry for record in found.records], found.cursor


def run_control(instance: dg.DagsterInstance) -> RunControl:
    """The instance's pools, runs, cancel and event log, for `ml_release.run_watch`."""
    parts = (pool_states, describe_run, stop_run, run_records)
    return RunControl(*(partial(part, instance) for part in parts))


def describe_run(instance: dg.DagsterInstance, run_id: str) -> str:
    """A run in a few words: job, status, who launched it, since when."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (unknown)"
    where = (
        f"process {run.tags[PID_TAG]} on {run.tags.get(HOST_TAG)}"
        if PID_TAG in run.tags
        else "the Dagster UI or a sensor"
    )
    return f"run {run_id} ({run.job_name}, {run.status.value}, launched by {where})"


def stop_run(instance: dg.DagsterInstance, run_id: str, why: str) -> None:
    """Mark an unfinished run of this process canceled and free its pool slots."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, why)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


# -- production_model: one materialization per ledger event that moved production ------------
def production_materialization(
    event: Event,
    rollback_target: str | None,
    home: Path | None = None,
    key: list[str] | None = None,
) -> dg.AssetMaterialization:
    """The `production_model` materialization (at `key`) for one ledger event that moved it."""
    return dg.AssetMaterialization(
        asset_key=key or [keys.PRODUCTION_MODEL],
        description=f"{event.event}: {event.reason or ''}",
        metadata={
            "version": event.version,
            "digest": event.digest or "",
            "event": event.event,
            "replaced": event.from_version or "none",
            "reason": event.reason or "",
            "actor": event.actor,
            "ledger_seq": event.seq,
            "rollback_target": rollback_target or "none",
            **({"home": str(home)} if home else {}),
        },
        tags={"dagster/data_version": event.digest or "none"},
    )


def unreported(
    instance: dg.DagsterInstance, registry: RegistryReads, model: str, key: list[str]
) -> list[Event]:
    """Ledger events that moved production and are not yet `production_model` events."""
    found = instance.fetch_materializations(dg.AssetKey(key), limit=1)
    metadata = found.records[0].asset_materialization.metadata if found.records else {}
    after = int(getattr(metadata.get("ledger_seq"), "value", 0) or 0)  # the last one reported
    return [e for e in registry.events(model, PRODUCTION_EVENTS) if e.seq > after]


def report_production(
    instance: dg.DagsterInstance,
    events: Iterable[tuple[Event, str | None]],
    key: list[str] | None = None,
) -> int:
    """Report `production_model` materializations outside a run; how many were reported."""
    from ml_release.faults import fault_point

    count = 0
    for event, target in events:
        fault_point("production:before_report", seq=event.seq)
        instance.report_runless_asset_event(production_materialization(event, target, key=key))
        count += 1
    return count


def sync_production(
    instance: dg.DagsterInstance,
    registry: RegistryReads,
    model: str,
    store_root: Path,
    key: list[str] | None = None,
) -> int:
    """Report every production change the ledger has and the instance lacks (crash catch-up).

    `key`: the `production_model` asset's key (`ReleaseSpec.key`; default: unprefixed).
    """
    from ml_release.rollback import next_known_good

    key = key or [keys.PRODUCTION_MODEL]
    missing = unreported(instance, registry, model, key)
    if not missing:
        return 0
    target = next_known_good(registry, store_root, model)
    return report_production(instance, [(event, target) for event in missing], key)


# -- running a release job ---------------------------------------------------------------------
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
    activity: Callable[[str], None] | None = None,
) -> ReleaseOutcome:
    """Run the release (or canary) job for candidate `digest` in this process.

    Slots of the warehouse pool left by runs whose process is gone are freed first. While the
    run waits for a slot another run holds, `progress` says which run and for how long; after
    `max_wait` seconds it gives up (WaitedTooLong, exit 3). SIGINT and SIGTERM stop it cleanly:
    the run is marked canceled, its slots freed (Interrupted, exit 130 / 143). `activity`
    gets what the run is doing about once a second (`run_watch.activity_line`).

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
        activity,
    )
    outcome = outcome_from_events(result.run_id, result.all_events)
    outcome.partition = digest
    return outcome


def release_in_process(
    spec: ReleaseSpec,
    candidate: Path | None = None,
    defs: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
    **watch: Any,
) -> ReleaseOutcome:
    """What `ml-release run` does: prepare the candidate, gate it in its own run, record.

    The candidate is trained from the spec, or `candidate` (an artifact folder, or for an LLM
    spec a prompt/config file) is admitted; it is registered before the run starts, so the run
    is launched for its digest. A run stopped by a gate or an error is recorded in the ledger,
    and `production_model` catches up with the ledger. `watch`: how the run is watched
    (`execute_release`'s `progress`, `max_wait` and `activity`).
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
    outcome = execute_release(defs, instance, spec, prepared.digest, **watch)
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


def execute_for_coverage(
    spec: ReleaseSpec,
    candidate_folder: Path,
    *,
    canary: bool = False,
    before_canary: Callable[[], None] = lambda: None,
    responses: Path | None = None,
) -> tuple[ReleaseOutcome, ReleaseOutcome | None]:
    """The release job on a throwaway in-memory instance: the coverage runner's, per mode.

    The candidate is the artifact folder `candidate_folder`; the run is its partition. With
    `canary`, a candidate the release gated ("awaiting canary") then goes through the canary
    job on the same instance, after `before_canary()`. `responses` (LLM specs): the recorded
    answers the run's LLM client replays.
    """
    from ml_release.artifacts import read_manifest
    from ml_release.definitions import build_definitions, build_replay_definitions

    # Unchained: each mode reaches every gate it targets, even after an earlier stage blocked.
    defs = (
        build_replay_definitions(spec, responses)
        if responses
        else build_definitions(spec, chained=False)
    )
    digest = read_manifest(candidate_folder).sha256
    with dg.DagsterInstance.ephemeral() as instance:
        release = execute_release(defs, instance, spec, digest, str(candidate_folder))
        if not canary or release.decision.get("decision") != "awaiting canary":
            return release, None
        before_canary()
        return release, execute_release(defs, instance, spec, digest, job=keys.CANARY_JOB)
