"""The warehouse pool: who holds it, and freeing what dead runs left behind.

Concurrency slots are read and freed through `instance.event_log_storage` (the calls Dagster's
own `dagster instance concurrency` command and run monitoring use); they live here, in one
place, and `tests/test_pool_recovery.py` fails loudly if a Dagster upgrade changes them.
"""

import time
from functools import partial
from typing import Any

import dagster as dg

from ml_release.run_watch import PoolState, RunControl

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
