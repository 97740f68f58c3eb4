"""A canary release of one gated candidate: check its verdicts, roll it out, promote or abort.

The canary job's asset calls `canary_release` once. The candidate must have passed every
offline gate against the production model that is live now (a canary never starts on a stale
pair); it then gets traffic in steps (`ml_release.canary.rollout`), and after the last step it
is promoted by the same compare-and-set as `release_decision`, from the same baseline.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml_release.canary.controller import CanaryResult, canary_evidence
from ml_release.canary.rollout import Candidate, rollout
from ml_release.errors import ConflictError, PromotionRefused
from ml_release.gates.result import GateResult, Verdict
from ml_release.promotion import GateVerdict, StaleVerdicts, judge_promotion
from ml_release.registry import PRODUCTION, Registry
from ml_release.release import ReleaseResult, release_candidate
from ml_release.serving.router import LocalRouter
from ml_release.serving.server import ServerOptions
from ml_release.serving.traffic import SplitOpener
from ml_release.shadow.replay import LoggedRequests
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef, production_ref

CANARY_CHECK = "canary_analysis"


@dataclass
class CanaryRelease:
    """How the canary ended, what it compared, and the promotion if it passed."""

    result: CanaryResult
    production: ModelRef
    evidence: GateResult
    steps: pd.DataFrame
    promotion: ReleaseResult | None

    @property
    def passed(self) -> bool:
        """True when every step passed (and the candidate was promoted)."""
        return self.result.verdict is Verdict.PASS


def check_gated(
    registry: Registry,
    spec: ReleaseSpec,
    candidate: ModelRef,
    history: dict[tuple[str, str], list[GateVerdict]],
    data: str | None,
) -> None:
    """Refuse a canary for a candidate whose offline verdicts do not hold against production.

    Raises:
        PromotionRefused: A must_pass verdict is missing or failed: it gets no traffic.
        StaleVerdicts: The verdicts compared against another production model, spec or data.
        ConflictError: Nothing else is in production to compare against.
    """
    model = spec.model.name
    live = registry.alias(model, PRODUCTION)
    if live is None or live == candidate.version:
        raise ConflictError(
            "nothing to canary against: no other version is in production "
            "(a first release is promoted by release_decision)"
        )
    required = [(g.target, g.name) for g in spec.gates if g.must_pass]
    decision = judge_promotion(
        required,
        history,
        candidate.digest,
        spec.spec_hash,
        registry.version(model, live).digest,
        data,
    )
    if decision.problems:
        raise PromotionRefused(
            f"{candidate.version} has not passed the offline gates, so it gets no traffic:\n  - "
            + "\n  - ".join(decision.problems)
        )
    if decision.stale:
        raise StaleVerdicts(
            f"stale: {candidate.version}'s verdicts do not hold now: {'; '.join(decision.stale)}. "
            "Re-run the release before the canary."
        )


def canary_release(
    spec: ReleaseSpec,
    registry: Registry,
    store_root: Path,
    candidate: ModelRef,
    history: Callable[[], dict[tuple[str, str], list[GateVerdict]]],
    data: str | None,
    requests: LoggedRequests,
    contract: dict[str, str],
    options: ServerOptions,
    workdir: Path,
    state_file: Path,
    lineage: dict,
    progress: Callable[[str], None] = lambda message: None,
    open_split: SplitOpener = LocalRouter,
) -> CanaryRelease:
    """Check, roll out, and promote after a pass (re-reading the verdicts at that moment)."""
    check_gated(registry, spec, candidate, history(), data)
    production = production_ref(registry, store_root, spec.model.name)
    assert production is not None  # check_gated refused an empty production
    result = rollout(
        spec,
        registry,
        Candidate(candidate.version, candidate.digest, candidate.folder),
        production,
        store_root,
        requests,
        contract,
        options,
        workdir,
        state_file,
        progress=progress,
        open_split=open_split,
    )
    steps = pd.DataFrame(
        [{"step_percent": look.step, **row} for look in result.looks for row in look.rows()]
    )
    evidence = canary_evidence(result, CANARY_CHECK, "canary_rollout", spec.spec_hash)
    evidence.baseline_digest = production.digest
    promotion = None
    if result.verdict is Verdict.PASS:
        promotion = release_candidate(
            registry,
            spec,
            candidate,
            history(),
            data,
            {**lineage, "canary": result.reason},
            canary_next=False,
            extra_verdicts=[{"dataset": "canary_rollout", "gate": CANARY_CHECK, "verdict": "pass"}],
        )
    return CanaryRelease(result, production, evidence, steps, promotion)
