"""Dagster asset checks built from the gates of the release spec."""

import dagster as dg

from checks.contract import build_contract_checks
from checks.evaluation import build_evaluation_checks
from checks.serving import build_serving_checks
from checks.shadow import build_shadow_checks
from checks.stored import build_stored_checks
from ml_release import keys
from ml_release.llm.gates import llm_gates
from ml_release.spec import ReleaseSpec


def build_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """Every check the spec's gates ask for."""
    if spec.model.task == "llm":
        return build_stored_checks(spec, llm_gates(spec), keys.LLM_EVALUATION_REPORT, "LLM")
    return [
        *build_contract_checks(spec),
        *build_evaluation_checks(spec),
        *build_serving_checks(spec),
        *build_shadow_checks(spec),
    ]
