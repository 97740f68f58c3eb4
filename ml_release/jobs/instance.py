"""The Dagster instance as ml-release uses it: the local one, candidates, recorded verdicts."""

from pathlib import Path
from typing import Any

import dagster as dg

from ml_release import keys
from ml_release.promotion import GateVerdict

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
