"""The Dagster instance, as ml-release uses it: one small adapter over its public API.

- `ensure_instance`: the persistent local instance shared by `ml-release` and `dagster dev`.
- `add_candidate`: the dynamic partition of a candidate digest (one run, one digest).
- `recorded_verdicts`: every gate verdict recorded for one candidate, from the runs of its
  partition (promotion re-reads them; it never trusts one run's blocking).
- `production_events`: the `production_model` asset's materializations, one per promotion,
  override and rollback, reported from wherever the ledger moved production (a run's step,
  `ml-release rollback`, an override) and caught up after a crash between the two.
- the warehouse pool: who holds it (`pool_states`), and freeing the slots of runs that cannot
  (`free_abandoned`: finished, or executed by a process that is gone).

Concurrency slots are read and freed through `instance.event_log_storage` (the calls Dagster's
own `dagster instance concurrency` command and run monitoring use); they live here, in one
place, and `tests/test_instance_adapter.py` fails loudly if a Dagster upgrade changes them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.promotion import GateVerdict
from ml_release.registry import PRODUCTION_EVENTS, Event, RegistryReads

INSTANCE_CONFIG = """\
# Written by ml-release: the Dagster instance shared by `ml-release run` and `dagster dev`.
# Steps that touch the DuckDB warehouse run one at a time across runs (DuckDB allows one
# writing process per file).
concurrency:
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
                dataset=evaluation.asset_key.to_user_string(),
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
    event: Event, rollback_target: str | None, home: Path | None = None
) -> dg.AssetMaterialization:
    """The `production_model` materialization for one ledger event that moved production."""
    return dg.AssetMaterialization(
        asset_key=keys.PRODUCTION_MODEL,
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


def reported_seq(instance: dg.DagsterInstance) -> int:
    """The ledger sequence number of the last production event the instance has."""
    found = instance.fetch_materializations(dg.AssetKey(keys.PRODUCTION_MODEL), limit=1)
    if not found.records:
        return 0
    metadata = found.records[0].asset_materialization.metadata
    return int(getattr(metadata.get("ledger_seq"), "value", 0) or 0)


def unreported(instance: dg.DagsterInstance, registry: RegistryReads, model: str) -> list[Event]:
    """Ledger events that moved production and are not yet `production_model` events."""
    after = reported_seq(instance)
    return [e for e in registry.events(model, PRODUCTION_EVENTS) if e.seq > after]


def report_production(
    instance: dg.DagsterInstance, events: Iterable[tuple[Event, str | None]]
) -> int:
    """Report `production_model` materializations outside a run; how many were reported."""
    from ml_release.faults import fault_point

    count = 0
    for event, target in events:
        fault_point("production:before_report", seq=event.seq)
        instance.report_runless_asset_event(production_materialization(event, target))
        count += 1
    return count


def sync_production(
    instance: dg.DagsterInstance, registry: RegistryReads, model: str, store_root: Path
) -> int:
    """Report every production change the ledger has and the instance lacks (crash catch-up)."""
    from ml_release.rollback import next_known_good

    missing = unreported(instance, registry, model)
    if not missing:
        return 0
    target = next_known_good(registry, store_root, model)
    return report_production(instance, [(event, target) for event in missing])


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


@dataclass(frozen=True)
class PoolState:
    """One pool: the runs holding its slots and the runs waiting for one."""

    pool: str
    holders: list[str]
    waiting: list[str]


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
