"""The Dagster glue that runs releases: the jobs, running them in-process, and the instance.

Every release run gates one candidate: the run is launched for the candidate's partition (its
artifact digest), which the launcher adds first (`ml-release run`, the artifact sensor, the
UI's partition picker). `execute_release` is what the CLI and the coverage runner call; it
executes the run in a worker thread watched by `ml_release.run_watch`.

The instance, as ml-release uses it (one small adapter over its public API):

- `ensure_instance`: the persistent local instance shared by `ml-release` and `dagster dev`.
- `add_candidate`: the dynamic partition of a candidate digest (one run, one digest).
- `recorded_verdicts`: every gate verdict recorded for one candidate, from the runs of its
  partition (promotion re-reads them; it never trusts one run's blocking).
- `production_materialization`, `sync_production`: the `production_model` asset's
  materializations, one per promotion, override and rollback, reported from wherever the
  ledger moved production and caught up after a crash between the two.
- the warehouse pool: who holds it (`pool_states`), and freeing the slots of runs that cannot
  (`free_abandoned`: finished, or executed by a process that is gone).

Concurrency slots are read and freed through `instance.event_log_storage` (the calls Dagster's
own `dagster instance concurrency` command and run monitoring use); they live here, in one
place, and `tests/test_pool_recovery.py` fails loudly if a Dagster upgrade changes them.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ml_release import keys
from ml_release.home import release_home, reports_dir
from ml_release.outcome import ReleaseOutcome, outcome_from_events
from ml_release.promotion import GateVerdict
from ml_release.registry import PRODUCTION_EVENTS, Event, RegistryReads
from ml_release.resource_types import Folder, RegistrySource
from ml_release.rollback import next_known_good, rollback
from ml_release.run_watch import PoolState, RunControl, watched_run
from ml_release.spec import ReleaseSpec

INSTANCE_CONFIG = """\
# Written by ml-release: the Dagster instance shared by `ml-release run` and `dagster dev`.
# Steps that touch a DuckDB warehouse run one at a time across runs (DuckDB allows one
# writing process per file); queued runs of one model (UI, sensor) one at a time.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: ml_release/model
        value: {applyLimitPerUniqueValue: true}
        limit: 1
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


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


def reported_seq(instance: dg.DagsterInstance, key: list[str]) -> int:
    """The ledger sequence number of the last production event the instance has at `key`."""
    found = instance.fetch_materializations(dg.AssetKey(key), limit=1)
    if not found.records:
        return 0
    metadata = found.records[0].asset_materialization.metadata
    return int(getattr(metadata.get("ledger_seq"), "value", 0) or 0)


def unreported(
    instance: dg.DagsterInstance, registry: RegistryReads, model: str, key: list[str]
) -> list[Event]:
    """Ledger events that moved production and are not yet `production_model` events."""
    after = reported_seq(instance, key)
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


# -- the warehouse pool: who holds it, and freeing what dead runs left behind -----------------
HOST_TAG, PID_TAG = "ml_release/host", "ml_release/pid"


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a run in-process (`ml-release run`)."""
    import os
    import socket

    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_gone(run: Any) -> bool:
    import socket

    import psutil

    pid = run.tags.get(PID_TAG, "")
    if run.tags.get(HOST_TAG) != socket.gethostname() or not pid.isdigit():
        return False  # launched elsewhere (the daemon, another host): not ours to judge
    return not psutil.pid_exists(int(pid))


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
    """Every concurrency pool's holders and waiters (run ids)."""
    storage = instance.event_log_storage
    states = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
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
        elif _process_gone(run) or run_id in force:
            why = (
                f"its process {run.tags.get(PID_TAG)} is gone"
                if run_id not in force
                else "named with --run"
            )
            instance.report_run_failed(run, f"ml-release: {why}; its pool slots were freed")
            storage.free_concurrency_slots_for_run(run_id)
            done.append(f"marked run {run_id} failed and freed its slots: {why}")
    return done


def run_control(instance: dg.DagsterInstance) -> RunControl:
    """The instance's pools, run descriptions and cancel, for `ml_release.run_watch`."""
    return RunControl(
        partial(pool_states, instance), partial(describe_run, instance), partial(stop_run, instance)
    )


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


class RollbackConfig(dg.Config):
    """Where to roll back to, and why (both end up in the ledger)."""

    to: str = Field("", description="Version to restore; empty: the last known-good version.")
    reason: str = Field("rollback launched from the Dagster UI", description="Why.")
    override: bool = Field(
        False, description="Restore `to` although it is not known-good (recorded as such)."
    )


def build_rollback_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """The `rollback` job: `production` back to a verified known-good version."""
    model = spec.model.name

    @dg.op(name=spec.named("rollback_production"))
    def rollback_production(
        context: dg.OpExecutionContext,
        config: RollbackConfig,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
    ) -> None:
        """Verify the target artifact, move the alias, record the event."""
        registry = model_registry.get()
        store = Path(artifact_store.path)
        outcome = rollback(
            registry,
            store,
            model,
            to=config.to or None,
            reason=config.reason,
            actor="dagster",
            override=config.override,
        )
        if outcome.already_done:
            context.log.info(f"{model}: nothing to do: {outcome.note}")
            return
        target = next_known_good(registry, store, model)
        key = spec.key(keys.PRODUCTION_MODEL)
        context.log_event(production_materialization(outcome.event, target, key=key))
        context.log.info(f"{model} production is now {outcome.target}")

    @dg.job(
        name=spec.named(keys.ROLLBACK_JOB),
        description="Roll production back to a known-good version.",
        tags={keys.MODEL_TAG: model},
    )
    def rollback_job():
        rollback_production()

    return rollback_job


def build_train_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """The `train_candidate` job: train the spec's model and publish it for the sensor."""

    @dg.op(name=spec.named("train_and_publish"))
    def train_and_publish(context: dg.OpExecutionContext) -> None:
        """Train the spec's pipeline and publish it into incoming/ (the sensor gates it)."""
        from ml_release.feature_code import load_feature_code
        from ml_release.publish import publish_candidate
        from ml_release.sources import fingerprint
        from ml_release.training import train_candidate

        model, metrics = train_candidate(spec)
        folder = publish_candidate(
            model,
            spec,
            training_data_fingerprint=fingerprint(spec.source_for(keys.TRAINING_SNAPSHOT)),
        )
        code = load_feature_code(spec.features.code)
        context.log.info(
            f"published {folder.name} (feature code {code.version}); "
            f"{keys.ARTIFACT_SENSOR} gates it: {metrics}"
        )

    @dg.job(
        name=spec.named(keys.TRAIN_JOB),
        description="Train the spec's model and publish it into incoming/ for the sensor to gate.",
        tags={keys.MODEL_TAG: spec.model.name},
    )
    def train_job():
        train_and_publish()

    return train_job


def release_jobs(spec: ReleaseSpec) -> list:
    """The `release` job (every asset but the canary) and, with canaries, the `canary` job.

    Each selects this spec's assets only (its key prefix where a location gates several), and
    tags its runs with the model: a run queue's tag limit serializes one model's releases.
    """
    mine = dg.AssetSelection.key_prefixes([spec.scope]) if spec.scope else dg.AssetSelection.all()
    gated = mine - dg.AssetSelection.assets(spec.key(keys.PRODUCTION_MODEL))
    tags = {keys.MODEL_TAG: spec.model.name}
    if not spec.canary.enabled:
        return [_release_job(spec, gated, tags)]
    rollout = dg.AssetSelection.assets(spec.key(keys.CANARY_ROLLOUT))
    return [
        _release_job(spec, gated - rollout, tags),
        dg.define_asset_job(
            name=spec.named(keys.CANARY_JOB),
            selection=rollout,
            description="Roll the gated candidate out in traffic steps; promote it or abort.",
            tags=tags,
        ),
    ]


def _release_job(spec: ReleaseSpec, selection: dg.AssetSelection, tags: dict[str, str]):
    return dg.define_asset_job(
        name=spec.named(keys.RELEASE_JOB),
        selection=selection,
        description="Gate one candidate (the run's partition: its digest) against every rule "
        "of the release spec, and promote it if every must_pass gate passes.",
        tags=tags,
    )


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
        RunControl(
            partial(pool_states, instance),
            partial(describe_run, instance),
            partial(stop_run, instance),
        ),
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


class CoverageConfig(dg.Config):
    """Which failure modes to inject and how."""

    modes: list[str] = Field(default_factory=list, description="Failure modes (empty: all).")
    sweep: bool = Field(False, description="Also find the weakest blocked strength.")
    all_gates: bool = Field(False, description="Serving and shadow gates for every mode.")


def build_coverage_job(spec: ReleaseSpec) -> dg.JobDefinition:
    """A one-op job: the coverage matrix as metadata, failed when coverage falls short."""

    @dg.op(
        name=spec.named("gate_coverage"),
        description="Inject each failure mode into a scratch copy; which gates block it.",
    )
    def gate_coverage(context: dg.OpExecutionContext, config: CoverageConfig) -> dg.Output:
        from ml_release.coverage.report import markdown, write_reports
        from ml_release.coverage.run import run_coverage

        workdir = release_home() / "coverage" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        result = run_coverage(
            spec,
            workdir,
            execute_for_coverage,
            modes=config.modes or None,
            sweep=config.sweep,
            all_gates=config.all_gates,
            progress=context.log.info,
        )
        paths = write_reports(result, reports_dir())
        metadata = {
            "matrix": dg.MetadataValue.md(markdown(result)),
            "modes_blocked": sum(run.caught for run in result.runs),
            "modes": len(result.runs),
            "modes_errored": len(result.errored),
            "control_passed": result.control_passed,
            "uncovered": ", ".join(result.uncovered) or "none",
            "report": dg.MetadataValue.path(str(paths["html"])),
        }
        if result.exit_code:
            raise dg.Failure(
                "coverage falls short: "
                + (
                    f"required modes not blocked: {', '.join(result.uncovered)}; "
                    if result.uncovered
                    else ""
                )
                + ("the control did not pass" if not result.control_passed else ""),
                metadata=metadata,
            )
        return dg.Output(result.exit_code, metadata=metadata)

    @dg.job(
        name=spec.named("coverage"),
        description="Gate coverage: which gates block each injected failure mode (scratch copy).",
        tags={keys.MODEL_TAG: spec.model.name},
    )
    def coverage():
        gate_coverage()

    return coverage
