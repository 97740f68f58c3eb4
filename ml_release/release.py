"""The release decision for one candidate: promote from its judged baseline, or hand it on.

`release_candidate` is what `release_decision` (and the canary after its last step) calls. It
re-reads the recorded verdicts for the candidate's digest (`judge_promotion`), then either
records it as `gated` for a canary, or promotes it by compare-and-set from exactly the baseline
its verdicts compared against; a block, a stale pair or a lost race is recorded and raised.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ml_release.promotion import GateVerdict, apply_decision, judge_promotion
from ml_release.registry import PRODUCTION, Event, Registry, RegistryReads
from ml_release.sources import data_version, loaded_fingerprints
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef
from ml_release.warehouse import Warehouse

AWAITING_CANARY = "awaiting canary"


@dataclass
class ReleaseResult:
    """What the decision did, for the asset's metadata and the verdict table."""

    decision: str  # promoted, awaiting canary, already in production
    candidate: ModelRef
    event: Event | None
    verdicts: list[dict] = field(default_factory=list)
    baseline_digest: str | None = None

    @property
    def replaced(self) -> str:
        """The version the promotion replaced ("none (no baseline)" for a first release)."""
        return (self.event.from_version if self.event else None) or "none (no baseline)"


def current_data_version(spec: ReleaseSpec, warehouse: Warehouse) -> str | None:
    """The version of the data a verdict must have been judged on to count now."""
    if spec.model.task == "llm":
        from ml_release.home import release_home
        from ml_release.llm.dataset import load_rag_set

        llm = spec.llm
        assert llm is not None
        return load_rag_set(llm.path(llm.dataset, spec.source.parent, release_home())).fingerprint
    from ml_release.feature_code import load_feature_code

    return data_version(warehouse, load_feature_code(spec.features.code).version)


def release_lineage(spec: ReleaseSpec, warehouse: Warehouse, run_id: str, version: str) -> dict:
    """What the promoted version is traced back to: the run, the data and the code."""
    if spec.model.task == "llm":
        return {
            "run_id": run_id,
            "data_version": current_data_version(spec, warehouse),
            "prompt_version": version,
        }
    with warehouse.held():  # a few short reads: one open of the file
        return {
            "run_id": run_id,
            "data_version": current_data_version(spec, warehouse),
            "sources": loaded_fingerprints(warehouse),
            "feature_code": spec.features.code,
        }


def release_candidate(
    registry: Registry,
    spec: ReleaseSpec,
    candidate: ModelRef,
    history: dict[tuple[str, str], list[GateVerdict]],
    data: str | None,
    lineage: dict,
    *,
    canary_next: bool,
    extra_verdicts: list[dict] | None = None,
) -> ReleaseResult:
    """Judge `candidate` from its recorded verdicts; gate it for a canary or promote it.

    Raises:
        PromotionRefused: A must_pass verdict is missing or failed.
        StaleVerdicts: Production moved, or the verdicts are about another spec or data.
    """
    model = spec.model.name
    required = [(g.target, g.id) for g in spec.gates if g.must_pass]
    live = registry.alias(model, PRODUCTION)
    live_digest = registry.version(model, live).digest if live else None
    decision = judge_promotion(
        required, history, candidate.digest, spec.spec_hash, live_digest, data
    )
    decision.verdicts += extra_verdicts or []
    if canary_next and decision.promote and live not in (None, candidate.version):
        event = registry.record(
            model,
            "gated",
            version=candidate.version,
            digest=candidate.digest,
            spec_hash=spec.spec_hash,
            verdicts=decision.verdicts,
            lineage={**lineage, "baseline": decision.baseline_digest or "n/a"},
            reason="every must_pass gate passed; awaiting the canary (canary.enabled)",
        )
        return ReleaseResult(
            AWAITING_CANARY, candidate, event, decision.verdicts, decision.baseline_digest
        )
    event = apply_decision(
        registry,
        model,
        candidate.version,
        candidate.digest,
        decision,
        spec_hash=spec.spec_hash,
        lineage=lineage,
    )
    outcome = "promoted" if event else "already in production"
    return ReleaseResult(outcome, candidate, event, decision.verdicts, decision.baseline_digest)


def rollback_target_after(registry: RegistryReads, store_root: Path, model: str) -> str | None:
    """The version a rollback would restore now (for the production event's metadata)."""
    from ml_release.rollback import next_known_good

    return next_known_good(registry, store_root, model)
