"""Turning a GateResult into a Dagster AssetCheckResult with its evidence as metadata."""

import math
from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.gates.catalog import CATALOG
from ml_release.gates.result import GateResult
from ml_release.registry import Registry
from ml_release.spec import GateSpec, ReleaseSpec
from ml_release.store import version_of
from ml_release.subjects import candidate_of_run


def run_candidate(context, spec: ReleaseSpec, registry: Registry) -> tuple[str, str]:
    """(version, digest) of the candidate this run gates: its partition, as registered."""
    digest = candidate_of_run(context.run.tags)
    registered = version_of(registry, spec.model.name, digest)
    return registered.version, digest


def _plain(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _table(rows: list[dict]) -> dg.MetadataValue:
    names = list(dict.fromkeys(k for row in rows for k in row))
    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: _plain(row.get(k)) for k in names}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(n) for n in names]),
    )


def evidence_metadata(
    result: GateResult,
    must_pass: bool,
    candidate: tuple[str | None, str | None],
    report_dir: Path | None = None,
) -> dict[str, object]:
    """A gate result's evidence as check metadata, in the shape every gate shares."""
    metadata: dict[str, object] = {
        keys.CANDIDATE_VERSION: candidate[0] or "none",
        keys.CANDIDATE_DIGEST: candidate[1] or "none",
        **result.evidence(),
        "must_pass": must_pass,
        "summary": dg.MetadataValue.md(result.markdown()),
    }
    if result.rows:
        metadata["columns"] = _table(result.rows)
    if result.examples:
        metadata["failing_examples"] = _table(result.examples)
    if result.plot_png and report_dir is not None:
        # A file, not base64 in the event log: the log stays small and the metadata plottable.
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / f"{result.target}__{result.gate}.png"
        path.write_bytes(result.plot_png)
        metadata["plot_path"] = dg.MetadataValue.path(str(path))
    return metadata


def check_description(gate: GateSpec) -> str:
    """The check's UI text: what the gate judges, and on which set when it has a choice."""
    summary = CATALOG[gate.name].summary
    if gate.eval_set == gate.target:
        return summary
    return f"{summary} Judged on: {gate.eval_set} ({gate.name})."


def check_result(
    result: GateResult,
    gate: GateSpec,
    spec: ReleaseSpec,
    candidate: tuple[str | None, str | None],
    report_dir: Path | None = None,
) -> dg.AssetCheckResult:
    """The check result of one gate: blocking severity when `must_pass`, evidence attached."""
    metadata = evidence_metadata(result, gate.must_pass, candidate, report_dir)
    metadata[keys.GATE_NAME] = gate.name
    metadata[keys.EVAL_SET] = gate.eval_set
    return dg.AssetCheckResult(
        asset_key=spec.key(gate.target),
        check_name=gate.id,
        passed=result.passed(inconclusive_blocks=spec.inconclusive == "block"),
        severity=dg.AssetCheckSeverity.ERROR if gate.must_pass else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=result.summary,
    )
