"""The Dagster glue that runs releases: the jobs, running them in-process, and the instance.

Every release run gates one candidate: the run is launched for the candidate's partition (its
artifact digest), which the launcher adds first (`ml-release run`, the artifact sensor, the
UI's partition picker). `execute_release` is what the CLI and the coverage runner call; it
executes the run in a worker thread watched by `ml_release.run_watch`.

- `build`: the jobs of a spec (release and canary, rollback, train, coverage).
- `execute`: running a release job in this process or on workers, and reading its outcome.
- `instance`: the persistent local instance shared by `ml-release` and `dg dev`, a
  candidate's dynamic partition (one run, one digest), and every gate verdict recorded for a
  candidate (promotion re-reads them; it never trusts one run's blocking).
- `production`: the `production_model` asset's materializations, one per promotion, override
  and rollback, reported from wherever the ledger moved production and caught up after a crash.
- `pool`: the warehouse pool: who holds it, and freeing the slots of runs that cannot.

These modules are the one small adapter over the Dagster instance's API; this package
re-exports what the rest of ml-release uses.
"""

from ml_release.jobs.build import (
    CoverageConfig,
    RollbackConfig,
    build_coverage_job,
    build_rollback_job,
    build_train_job,
    release_jobs,
)
from ml_release.jobs.execute import (
    DEFAULT_MAX_WAIT,
    execute_for_coverage,
    execute_in_ephemeral_instance,
    execute_release,
    outcome_of_run,
    release_in_process,
)
from ml_release.jobs.instance import (
    INSTANCE_CONFIG,
    add_candidate,
    ensure_instance,
    recorded_verdicts,
)
from ml_release.jobs.pool import (
    HOST_TAG,
    PID_TAG,
    describe_run,
    free_abandoned,
    pool_states,
    prepare_pool,
    process_tags,
    run_control,
    stop_run,
)
from ml_release.jobs.production import (
    production_materialization,
    report_production,
    reported_seq,
    sync_production,
    unreported,
)

__all__ = [
    "DEFAULT_MAX_WAIT",
    "HOST_TAG",
    "INSTANCE_CONFIG",
    "PID_TAG",
    "CoverageConfig",
    "RollbackConfig",
    "add_candidate",
    "build_coverage_job",
    "build_rollback_job",
    "build_train_job",
    "describe_run",
    "ensure_instance",
    "execute_for_coverage",
    "execute_in_ephemeral_instance",
    "execute_release",
    "free_abandoned",
    "outcome_of_run",
    "pool_states",
    "prepare_pool",
    "process_tags",
    "production_materialization",
    "recorded_verdicts",
    "release_in_process",
    "release_jobs",
    "report_production",
    "reported_seq",
    "run_control",
    "stop_run",
    "sync_production",
    "unreported",
]
