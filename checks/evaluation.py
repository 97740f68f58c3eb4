"""Model-quality checks on `evaluation_report`: the verdicts it computed for this run."""

import dagster as dg

from checks.stored import build_stored_checks
from ml_release import keys
from ml_release.evaluation.run import model_gates
from ml_release.spec import ReleaseSpec


def build_evaluation_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """One multi-check emitting every model-quality gate of the spec."""
    return build_stored_checks(spec, model_gates(spec), keys.EVALUATION_REPORT, "Model-quality")
