"""The verdict of a gate and its evidence, in one shape for every gate.

Every gate returns a `GateResult`: verdict (`pass`, `fail`, `inconclusive`), the headline
numbers (observed, baseline, delta, interval, threshold, direction, support), a per-column or
per-segment table, bounded failing examples, and the spec hash of the rules that produced it.
"""

import base64
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ml_release import keys


class Verdict(StrEnum):
    """What a gate concluded."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


Direction = Literal["higher_is_better", "lower_is_better"]


@dataclass
class GateResult:
    """One gate's verdict with its evidence."""

    gate: str
    target: str
    verdict: Verdict
    summary: str
    method: str
    observed: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    direction: Direction = "lower_is_better"
    interval: tuple[float, float] | None = None
    support: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    plot_png: bytes | None = None
    spec_hash: str = ""
    # What the verdict is about, beyond the candidate: the production model it compared
    # against ("none" for a trivial baseline, None for a gate that compares nothing) and the
    # version of the data it judged. Promotion refuses verdicts about another pair or data.
    baseline_digest: str | None = None
    data_version: str | None = None

    @property
    def delta(self) -> float | None:
        """Observed - baseline, when both exist."""
        if self.observed is None or self.baseline is None:
            return None
        return self.observed - self.baseline

    def passed(self, inconclusive_blocks: bool = True) -> bool:
        """Whether a check built from this result passes under the spec's inconclusive policy."""
        if self.verdict is Verdict.INCONCLUSIVE:
            return not inconclusive_blocks
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats as text, the plot as base64)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["plot_png"] = base64.b64encode(self.plot_png).decode() if self.plot_png else None
        return _jsonable(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GateResult":
        """Inverse of `to_dict`."""
        data = dict(data)
        data["verdict"] = Verdict(data["verdict"])
        data["plot_png"] = base64.b64decode(data["plot_png"]) if data.get("plot_png") else None
        if data.get("interval") is not None:
            data["interval"] = tuple(data["interval"])
        return cls(**data)

    def evidence(self) -> dict[str, Any]:
        """The headline evidence every gate shares, as plain values for check metadata.

        Numbers that are missing or not finite are text ("None", "nan"), never a wrong number.
        """

        def number(value: float | None) -> float | str:
            return float(value) if value is not None and math.isfinite(value) else str(value)

        return {
            "verdict": self.verdict.value,
            "method": self.method,
            "observed": number(self.observed),
            "baseline": number(self.baseline),
            "delta": number(self.delta),
            "threshold": number(self.threshold),
            "direction": self.direction,
            "interval": str(self.interval) if self.interval else "n/a",
            "support": dict(self.support),
            keys.SPEC_HASH: self.spec_hash,
            keys.BASELINE_DIGEST: self.baseline_digest or "n/a",
            keys.DATA_VERSION: self.data_version or "unknown",
        }

    def markdown(self) -> str:
        """A short Markdown summary for people: verdict, headline numbers, failing rows."""
        lines = [
            f"**{self.gate}** on `{self.target}`: **{self.verdict.value.upper()}**",
            "",
            self.summary,
            "",
            f"method: {self.method}; direction: {self.direction.replace('_', ' ')}",
        ]
        failing = [r for r in self.rows if r.get("status") not in (None, "ok")]
        if failing:
            headers = list(failing[0])
            lines += ["", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            for row in failing[:20]:
                lines.append("| " + " | ".join(_cell(row.get(h)) for h in headers) + " |")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
