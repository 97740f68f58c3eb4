"""Dagster asset checks built from the gates of the release spec."""

import dagster as dg

from checks.contract import build_contract_checks
from checks.evaluation import build_evaluation_checks
from checks.serving import build_serving_checks
from checks.shadow import build_shadow_checks
from ml_release.spec import ReleaseSpec


def build_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """Every check the spec's gates ask for."""
    return [
        *build_contract_checks(spec),
        *build_evaluation_checks(spec),
        *build_serving_checks(spec),
        *build_shadow_checks(spec),
    ]
