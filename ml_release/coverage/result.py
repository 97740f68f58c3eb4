"""What a coverage run found: each mode's run, and the matrix of modes by gates."""

import re
from dataclasses import dataclass, field

from ml_release.spec import ReleaseSpec

CONTROL = "control"
CANARY_CHECK = "canary_analysis"
SERVER_FAMILIES = ("serving", "shadow")


@dataclass
class ModeRun:
    """One release run on an injected copy: every gate's outcome and any error that stopped it."""

    mode: str
    title: str
    strength: float | None
    families: tuple[str, ...]
    gates: list[dict]
    failures: list[dict]
    seconds: float
    exit_code: int = 0
    promoted: bool = False
    expects_error: str = ""  # the mode's declared error (FailureMode.expects_error)

    @property
    def blocked_by(self) -> list[str]:
        """`must_pass` gates that did not pass."""
        return [g["gate"] for g in self.gates if g["blocking"] and not g["passed"]]

    @property
    def warned_by(self) -> list[str]:
        """Warning-only gates that did not pass."""
        return [g["gate"] for g in self.gates if not g["blocking"] and not g["passed"]]

    @property
    def expected_error(self) -> bool:
        """Every error that stopped the run is the one the mode declares."""
        pattern = self.expects_error
        return bool(pattern and self.failures) and all(
            re.search(pattern, f"{f['error']}: {f.get('message', '')}", re.S) for f in self.failures
        )

    @property
    def errored(self) -> bool:
        """An error the mode does not declare stopped the run: a crash, never counted as caught.

        A non-zero exit that no blocking gate and no error explains counts as one too.
        """
        unexplained = self.exit_code != 0 and not self.blocked_by and not self.failures
        return (bool(self.failures) and not self.expected_error) or unexplained

    @property
    def caught(self) -> bool:
        """A blocking gate said no, or the run stopped with the error the mode declares."""
        return not self.errored and (bool(self.blocked_by) or self.expected_error)

    @property
    def outcome(self) -> str:
        """`errored`, `blocked`, `expected error` or `passed`."""
        if self.errored:
            return "errored"
        if self.blocked_by:
            return "blocked"
        return "expected error" if self.expected_error else "passed"

    @property
    def stopped_by(self) -> str:
        """What stopped the release: the blocking gates, or the declared error's step."""
        if self.blocked_by:
            return ", ".join(dict.fromkeys(self.blocked_by))
        return ", ".join(f"{f['step']} ({f['error']})" for f in self.failures)

    def cell(self, column: str) -> str:
        """The matrix cell of a gate column: blocked, warned, passed or not run."""
        name, _, target = column.partition(" @ ")
        rows = [
            g for g in self.gates if g["gate"] == name and (not target or g["dataset"] == target)
        ]
        if not rows:
            return "not run"
        if all(g["passed"] for g in rows):
            return "passed"
        return "blocked" if any(g["blocking"] and not g["passed"] for g in rows) else "warned"


@dataclass
class CoverageResult:
    """The matrix: the control and every mode against every gate of the spec."""

    spec_source: str
    gates: list[str]  # matrix columns, see gate_columns
    control: ModeRun
    runs: list[ModeRun]
    required: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # mode -> why it does not apply
    sweeps: dict[str, list[ModeRun]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def uncovered(self) -> list[str]:
        """Required modes no `must_pass` gate (or declared error) caught; errored ones too."""
        caught = {run.mode for run in self.runs if run.caught}
        ran = {run.mode for run in self.runs}
        return [m for m in self.required if m in ran and m not in caught]

    @property
    def errored(self) -> list[str]:
        """Modes an undeclared error stopped: crashes, reported apart from caught ones."""
        return [run.mode for run in self.runs if run.errored]

    @property
    def control_passed(self) -> bool:
        """The healthy control went through: no gate blocked it and no error stopped it."""
        return self.control.outcome == "passed"

    @property
    def exit_code(self) -> int:
        """0 every required mode was caught and the control passed; 1 otherwise."""
        return 1 if self.uncovered or not self.control_passed else 0

    def smallest_blocked(self, mode: str) -> float | None:
        """The weakest swept strength that was blocked (None: none was)."""
        caught = [run.strength for run in self.sweeps.get(mode, []) if run.caught]
        return min(caught) if caught else None


def gate_columns(spec: ReleaseSpec) -> list[str]:
    """One matrix column per gate id; `id @ target` where an id is listed for several targets."""
    ids = [g.id for g in spec.gates]
    columns = [g.id if ids.count(g.id) == 1 else f"{g.id} @ {g.target}" for g in spec.gates]
    return columns + ([CANARY_CHECK] if spec.canary.enabled else [])
