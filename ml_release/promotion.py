"""Whether a candidate may be promoted: re-reading the verdicts, never trusting one run.

Dagster's blocking checks stop downstream steps within one run only. Before `production`
moves, `judge_promotion` takes the latest recorded verdict of every `must_pass` gate for this
exact candidate digest and refuses when any is missing, failed, or stale (made under another
spec, or before its dataset was last rebuilt).
"""

from dataclasses import dataclass, field

from ml_release.errors import PromotionRefused
from ml_release.registry import PRODUCTION, Event, Registry


@dataclass(frozen=True)
class GateVerdict:
    """One recorded evaluation of a gate (a Dagster asset check)."""

    dataset: str
    gate: str
    passed: bool
    verdict: str
    candidate_digest: str | None
    spec_hash: str | None
    evaluated_at: float
    run_id: str


@dataclass
class PromotionDecision:
    """The outcome: promote or not, with the reasons and the verdicts it relied on."""

    promote: bool
    problems: list[str] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)


def judge_promotion(
    required: list[tuple[str, str]],
    history: dict[tuple[str, str], list[GateVerdict]],
    digest: str,
    spec_hash: str,
    rebuilt_at: dict[str, float],
) -> PromotionDecision:
    """Judge the `required` (dataset, gate) pairs from their recorded `history` (newest first).

    `rebuilt_at` holds, per dataset, when it was last materialized: a verdict older than its
    data says nothing about the data the candidate would ship with.
    """
    decision = PromotionDecision(promote=True)
    for dataset, gate in required:
        name = f"{gate} on {dataset}"
        mine = [v for v in history.get((dataset, gate), []) if v.candidate_digest == digest]
        if not mine:
            decision.problems.append(f"{name}: no verdict for candidate {digest[:12]}")
            continue
        latest = max(mine, key=lambda v: v.evaluated_at)
        decision.verdicts.append(
            {
                "dataset": dataset,
                "gate": gate,
                "verdict": latest.verdict,
                "passed": latest.passed,
                "run_id": latest.run_id,
            }
        )
        if latest.spec_hash != spec_hash:
            decision.problems.append(f"{name}: stale, judged under another release spec")
        elif latest.evaluated_at < rebuilt_at.get(dataset, 0.0):
            decision.problems.append(f"{name}: stale, {dataset} was rebuilt after the verdict")
        elif not latest.passed:
            decision.problems.append(f"{name}: {latest.verdict}")
    decision.promote = not decision.problems
    return decision


def apply_decision(
    registry: Registry,
    model: str,
    version: str,
    digest: str,
    decision: PromotionDecision,
    *,
    spec_hash: str,
    lineage: dict,
    actor: str = "",
) -> Event | None:
    """Promote, or record the block and raise PromotionRefused. None: already in production."""
    who = {"actor": actor} if actor else {}
    if not decision.promote:
        registry.record(
            model,
            "blocked",
            version=version,
            digest=digest,
            spec_hash=spec_hash,
            verdicts=decision.verdicts,
            lineage=lineage,
            reason="; ".join(decision.problems),
            **who,
        )
        raise PromotionRefused(
            f"{model} {version} ({digest[:12]}) is not promoted:\n  - "
            + "\n  - ".join(decision.problems)
        )
    current = registry.alias(model, PRODUCTION)
    reason = (
        "first release: no baseline, absolute gates only"
        if current is None
        else f"every must_pass gate passed; replaces {current}"
    )
    return registry.move_production(
        model,
        version,
        expected=current,
        event="promoted",
        step="promote",
        reason=reason,
        spec_hash=spec_hash,
        verdicts=decision.verdicts,
        lineage={**lineage, "baseline": current or "none"},
        **who,
    )


def record_blocked(registry: Registry, model: str, spec_hash: str, outcome) -> Event | None:
    """Ledger `blocked` for a release run that a blocking gate stopped before release_decision.

    `outcome` is the run's `ml_release.jobs.ReleaseOutcome`. Once per run: None when no gate
    blocked, no candidate was gated, or the ledger already holds this run's block (both
    `ml-release run` and the run-failure sensor can see one run).
    """
    if not (outcome.blocked and outcome.candidate):
        return None
    recorded = registry.events(model, ("blocked",))
    if any(event.lineage.get("run_id") == outcome.run_id for event in recorded):
        return None
    return registry.record(
        model,
        "blocked",
        version=outcome.candidate["candidate_version"],
        digest=outcome.candidate["candidate_digest"],
        spec_hash=spec_hash,
        verdicts=outcome.gates,
        reason="blocked by " + ", ".join(f"{g['gate']} ({g['dataset']})" for g in outcome.blocked),
        lineage={"run_id": outcome.run_id},
    )
