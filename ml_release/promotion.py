"""Whether a candidate may be promoted: re-reading the verdicts, never trusting one run.

Dagster's blocking checks stop downstream steps within one run only. Before `production`
moves, `judge_promotion` takes the latest recorded verdict of every `must_pass` gate for this
exact candidate digest and refuses when any is missing or failed. A verdict is about a pair:
every comparison verdict names the baseline digest it compared against, and the candidate is
promoted only from exactly that baseline (compare-and-set). When production moved since the
candidate was judged, or the verdicts were made under another spec or on other data, the
outcome is `stale`: nothing moves, and the release must be re-run.
"""

from dataclasses import dataclass, field

from ml_release.errors import EXIT_CONFLICT, ConflictError, PromotionRefused, ReleaseError
from ml_release.registry import PRODUCTION, Event, Registry

NO_BASELINE = "none"  # a first release: judged against a trivial model


class StaleVerdicts(ReleaseError):
    """The verdicts are about another baseline, spec or data than what is current."""

    exit_code = EXIT_CONFLICT


@dataclass(frozen=True)
class GateVerdict:
    """One recorded evaluation of a gate (a Dagster asset check named by the gate's id)."""

    dataset: str
    gate: str
    passed: bool
    verdict: str
    candidate_digest: str | None
    spec_hash: str | None
    evaluated_at: float
    run_id: str
    baseline_digest: str | None = None  # None: the gate compares nothing (a data gate)
    data_version: str | None = None
    eval_set: str | None = None  # what it judged: `holdout`, `serving`, or its dataset


@dataclass
class PromotionDecision:
    """The outcome: promote or not, with the reasons and the verdicts it relied on."""

    promote: bool
    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    baseline_digest: str | None = None  # what every comparison verdict was judged against

    @property
    def is_stale(self) -> bool:
        """Nothing failed, but the verdicts no longer describe what would ship."""
        return not self.problems and bool(self.stale)


def _baselines(judged: list[GateVerdict]) -> set[str]:
    return {v.baseline_digest for v in judged if v.baseline_digest is not None}


def judge_promotion(
    required: list[tuple[str, str]],
    history: dict[tuple[str, str], list[GateVerdict]],
    digest: str,
    spec_hash: str,
    production_digest: str | None,
    data_version: str | None = None,
) -> PromotionDecision:
    """Judge the `required` (dataset, gate) pairs from their recorded `history`.

    Args:
        required: The spec's must_pass gates as (dataset, gate id).
        history: Recorded verdicts per pair, any order.
        digest: The candidate's artifact digest.
        spec_hash: The current spec's hash.
        production_digest: The digest production has now (None before the first release).
        data_version: The current data version; verdicts made on other data are stale.
    """
    decision = PromotionDecision(promote=True)
    latest: list[GateVerdict] = []
    for dataset, gate in required:
        name = f"{gate} on {dataset}"
        mine = [v for v in history.get((dataset, gate), []) if v.candidate_digest == digest]
        if not mine:
            decision.problems.append(f"{name}: no verdict for candidate {digest[:12]}")
            continue
        verdict = max(mine, key=lambda v: v.evaluated_at)
        latest.append(verdict)
        decision.verdicts.append(
            {
                "dataset": dataset,
                "gate": gate,
                "eval_set": verdict.eval_set,
                "verdict": verdict.verdict,
                "passed": verdict.passed,
                "run_id": verdict.run_id,
                "baseline_digest": verdict.baseline_digest,
            }
        )
        if not verdict.passed:
            decision.problems.append(f"{name}: {verdict.verdict}")
        elif verdict.spec_hash != spec_hash:
            decision.stale.append(f"{name}: judged under another release spec")
        elif data_version and verdict.data_version and verdict.data_version != data_version:
            decision.stale.append(f"{name}: judged on other data than the current datasets")
    baselines = _baselines(latest)
    now = production_digest or NO_BASELINE
    if len(baselines) > 1:
        decision.stale.append(
            "the gates compared against different production models "
            f"({', '.join(sorted(b[:12] for b in baselines))}): production moved during the run"
        )
    elif baselines:
        decision.baseline_digest = baselines.pop()
        if decision.baseline_digest != now:
            decision.stale.append(
                f"production moved from {decision.baseline_digest[:12]} to {now[:12]} since "
                "the candidate was judged"
            )
    decision.promote = not decision.problems and not decision.stale
    return decision


def _expected_version(registry: Registry, model: str, baseline_digest: str | None) -> str | None:
    current = registry.alias(model, PRODUCTION)
    if baseline_digest is None:  # no comparison gate: promote from whatever is live
        return current
    if baseline_digest == NO_BASELINE:
        return None
    found = registry.by_digest(model, baseline_digest)
    return found.version if found else None


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
    """Promote from the judged baseline, or record why not and raise; None: already live.

    Raises:
        PromotionRefused: A must_pass verdict is missing or failed (recorded as `blocked`).
        StaleVerdicts: Production moved, or the verdicts are about another spec or data
            (recorded as `stale`); re-run the release.
    """
    record = {
        "version": version,
        "digest": digest,
        "spec_hash": spec_hash,
        "verdicts": decision.verdicts,
        "lineage": lineage,
        "actor": actor,
    }
    if decision.problems:
        registry.record(model, "blocked", reason="; ".join(decision.problems), **record)
        raise PromotionRefused(
            f"{model} {version} ({digest[:12]}) is not promoted:\n  - "
            + "\n  - ".join(decision.problems)
        )
    if decision.stale:
        raise _stale(registry, model, version, "; ".join(decision.stale), record)
    expected = _expected_version(registry, model, decision.baseline_digest)
    reason = (
        "first release: no baseline, absolute gates only"
        if expected is None
        else f"every must_pass gate passed against {expected}; replaces it"
    )
    try:
        return registry.move_production(
            model,
            version,
            expected=expected,
            event="promoted",
            step="promote",
            reason=reason,
            spec_hash=spec_hash,
            verdicts=decision.verdicts,
            lineage={**lineage, "baseline": expected or NO_BASELINE},
            actor=actor,
        )
    except ConflictError as exc:
        raise _stale(registry, model, version, str(exc), record) from None


def _stale(registry: Registry, model: str, version: str, why: str, record: dict) -> StaleVerdicts:
    registry.record(model, "stale", reason=why, **record)
    return StaleVerdicts(
        f"stale: {model} {version} was not promoted: {why}. Nothing changed; re-run the "
        "release to judge it against what is in production now."
    )


def record_outcome(registry: Registry, model: str, spec_hash: str, outcome) -> Event | None:
    """Ledger `blocked` or `errored` for a release run that stopped before release_decision.

    `outcome` is the run's `ml_release.outcome.ReleaseOutcome`. Once per run: None when the run
    reached a decision (which recorded itself), or the ledger already holds this run.
    """
    digest = outcome.candidate.get("candidate_digest") or outcome.partition
    if outcome.decision or outcome.refusal or outcome.stale or not digest:
        return None
    if outcome.blocked:
        event = "blocked"
        reason = "blocked by " + ", ".join(f"{g['gate']} ({g['dataset']})" for g in outcome.blocked)
    elif outcome.failures:
        event = "errored"
        first = outcome.failures[0]
        reason = f"{first['step']} failed ({first['error']}): {first['message'][:300]}"
    else:
        return None
    if any(e.lineage.get("run_id") == outcome.run_id for e in registry.events(model, (event,))):
        return None
    return registry.record(
        model,
        event,
        version=outcome.candidate.get("candidate_version"),
        digest=digest,
        spec_hash=spec_hash,
        verdicts=outcome.gates,
        reason=reason,
        lineage={"run_id": outcome.run_id},
    )
