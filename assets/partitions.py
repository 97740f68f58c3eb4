"""The candidates partitions: one Dagster partition per candidate digest (one run, one digest)."""

import dagster as dg

from ml_release import keys
from ml_release.spec import ReleaseSpec


def candidates(spec: ReleaseSpec) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions of `spec`'s model: a key per candidate artifact digest."""
    return dg.DynamicPartitionsDefinition(name=keys.candidates_partitions(spec.model.name))
