"""What a release run concluded, read from its events by the Dagster glue (`ml_release.jobs`)."""

from dataclasses import dataclass, field

from ml_release.errors import (
    EXIT_BLOCKED,
    EXIT_CONFLICT,
    EXIT_INTERNAL,
    EXIT_OK,
    exit_code_of_failure,
)


@dataclass
class ReleaseOutcome:
    """What a release run concluded: gate verdicts, failed steps, and the exit code."""

    run_id: str
    partition: str = ""  # the candidate digest the run gated
    prepared: str = ""  # how the candidate came to be, for the verdict table
    candidate: dict = field(default_factory=dict)
    decision: dict = field(default_factory=dict)
    refusal: str = ""
    stale: str = ""
    gates: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> list[dict]:
        """Blocking gates that did not pass."""
        return [g for g in self.gates if g["blocking"] and not g["passed"]]

    @property
    def exit_code(self) -> int:
        """0 every blocking gate passed, 1 blocked by a gate, 2-4 an error stopped the run."""
        if self.failures:
            codes = [exit_code_of_failure(f["error"], f["message"]) for f in self.failures]
            known = [code for code in codes if code != EXIT_INTERNAL]
            return max(known) if known else EXIT_INTERNAL
        if self.stale:
            return EXIT_CONFLICT
        if not self.decision and not self.blocked:
            return EXIT_BLOCKED  # nothing was promoted and no gate said why: never a pass
        return EXIT_BLOCKED if self.blocked or self.refusal else EXIT_OK
