"""Shadow-replay checks on `shadow_report`: the verdicts it computed for this run."""

import dagster as dg

from checks.stored import build_stored_checks
from ml_release import keys
from ml_release.shadow.gates import shadow_gates
from ml_release.spec import ReleaseSpec


def build_shadow_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """One multi-check emitting every shadow gate of the spec."""
    return build_stored_checks(spec, shadow_gates(spec), keys.SHADOW_REPORT, "Shadow-replay")
