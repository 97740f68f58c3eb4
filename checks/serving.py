"""Serving-path checks on `serving_report`: the verdicts it computed for this run."""

import dagster as dg

from checks.stored import build_stored_checks
from ml_release import keys
from ml_release.serving.gates import serving_gates
from ml_release.spec import ReleaseSpec


def build_serving_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """One multi-check emitting every serving gate of the spec."""
    return build_stored_checks(spec, serving_gates(spec), keys.SERVING_REPORT, "Serving-path")
