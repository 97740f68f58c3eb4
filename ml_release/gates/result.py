"""The verdict of a gate and its evidence, in one shape for every gate.

Every gate returns a `GateResult`: verdict (`pass`, `fail`, `inconclusive`), the headline
numbers (observed, baseline, delta, interval, threshold, direction, support), a per-column or
per-segment table, bounded failing examples, and the spec hash of the rules that produced it.

`evidence()` is what check metadata holds, and it keeps one type per key from run to run so the
UI can plot a gate over time: every headline number is a float (NaN when missing or not finite),
the interval is two floats (`interval_low`, `interval_high`), and `draws` (resamples behind a
bootstrap interval) is an int, present only for bootstrap intervals.
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
    draws: int | None = None
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
        """Inverse of `to_dict` (headline numbers stored as text become floats again)."""
        data = dict(data)
        data["verdict"] = Verdict(data["verdict"])
        data["plot_png"] = base64.b64decode(data["plot_png"]) if data.get("plot_png") else None
        for name in ("observed", "baseline", "threshold"):
            if isinstance(data.get(name), str):
                data[name] = float(data[name])
        if data.get("interval") is not None:
            data["interval"] = tuple(float(v) for v in data["interval"])
        return cls(**data)

    def evidence(self) -> dict[str, Any]:
        """The headline evidence every gate shares, as plain values for check metadata.

        Each key keeps its type from run to run: numbers are floats, NaN when missing or not
        finite (never text, never a wrong number); `draws` only for bootstrap intervals.
        """
        low, high = self.interval if self.interval else (None, None)
        fields = {
            "verdict": self.verdict.value,
            "method": self.method,
            "observed": _number(self.observed),
            "baseline": _number(self.baseline),
            "delta": _number(self.delta),
            "threshold": _number(self.threshold),
            "direction": self.direction,
            "interval_low": _number(low),
            "interval_high": _number(high),
            "support": dict(self.support),
            keys.SPEC_HASH: self.spec_hash,
            keys.BASELINE_DIGEST: self.baseline_digest or "n/a",
            keys.DATA_VERSION: self.data_version or "unknown",
        }
        if self.draws is not None:
            fields["draws"] = int(self.draws)
        return fields

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


def _number(value: float | None) -> float:
    """A float for check metadata: NaN stands for missing or not finite."""
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


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
