"""A gate result's evidence as Dagster metadata: one shape for every check, canary included."""

import base64
import math
from pathlib import Path

import dagster as dg

from ml_release import keys
from ml_release.gates.result import GateResult


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


def _number(value: float | None) -> dg.MetadataValue:
    if value is None or not math.isfinite(value):
        return dg.MetadataValue.text(str(value))
    return dg.MetadataValue.float(float(value))


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
        "verdict": result.verdict.value,
        "must_pass": must_pass,
        "summary": dg.MetadataValue.md(result.markdown()),
        "method": result.method,
        "observed": _number(result.observed),
        "baseline": _number(result.baseline),
        "delta": _number(result.delta),
        "threshold": _number(result.threshold),
        "direction": result.direction,
        "interval": str(result.interval) if result.interval else "n/a",
        "support": dg.MetadataValue.json(result.support),
        keys.SPEC_HASH: result.spec_hash,
    }
    if result.rows:
        metadata["columns"] = _table(result.rows)
    if result.examples:
        metadata["failing_examples"] = _table(result.examples)
    if result.plot_png:
        encoded = base64.b64encode(result.plot_png).decode()
        metadata["plot"] = dg.MetadataValue.md(f"![{result.gate}](data:image/png;base64,{encoded})")
        if report_dir is not None:
            report_dir.mkdir(parents=True, exist_ok=True)
            path = report_dir / f"{result.target}__{result.gate}.png"
            path.write_bytes(result.plot_png)
            metadata["plot_path"] = dg.MetadataValue.path(str(path))
    return metadata
