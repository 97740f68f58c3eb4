"""Turning a GateResult into a Dagster AssetCheckResult with its evidence as metadata."""

from pathlib import Path

import dagster as dg

from ml_release.check_metadata import evidence_metadata
from ml_release.gates.result import GateResult
from ml_release.spec import GateSpec, ReleaseSpec


def check_result(
    result: GateResult,
    gate: GateSpec,
    spec: ReleaseSpec,
    candidate: tuple[str | None, str | None],
    report_dir: Path | None = None,
) -> dg.AssetCheckResult:
    """The check result of one gate: blocking severity when `must_pass`, evidence attached."""
    metadata = evidence_metadata(result, gate.must_pass, candidate, report_dir)
    return dg.AssetCheckResult(
        asset_key=gate.target,
        check_name=gate.name,
        passed=result.passed(inconclusive_blocks=spec.inconclusive == "block"),
        severity=dg.AssetCheckSeverity.ERROR if gate.must_pass else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=result.summary,
    )
