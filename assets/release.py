"""The release decision: promotion that re-reads every blocking verdict from the instance."""

import dagster as dg

from ml_release import keys
from ml_release.promotion import GateVerdict, apply_decision, judge_promotion
from ml_release.registry import PRODUCTION
from ml_release.spec import ReleaseSpec

HISTORY_LIMIT = 50


def _value(metadata: dict, key: str) -> object:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _history(instance: dg.DagsterInstance, dataset: str, gate: str) -> list[GateVerdict]:
    check = dg.AssetCheckKey(dg.AssetKey(dataset), gate)
    records = instance.event_log_storage.get_asset_check_execution_history(
        check, limit=HISTORY_LIMIT
    )
    verdicts = []
    for record in records:
        evaluation = record.event and record.event.dagster_event.event_specific_data
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue  # planned, or the check crashed: no verdict
        verdicts.append(
            GateVerdict(
                dataset=dataset,
                gate=gate,
                passed=evaluation.passed,
                verdict=str(_value(evaluation.metadata, "verdict") or evaluation.passed),
                candidate_digest=_value(evaluation.metadata, keys.CANDIDATE_DIGEST),
                spec_hash=_value(evaluation.metadata, keys.SPEC_HASH),
                evaluated_at=record.event.timestamp,
                run_id=record.run_id,
            )
        )
    return verdicts


def _materialized_at(instance: dg.DagsterInstance, asset: str) -> float:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.timestamp if event else 0.0


def offline_decision(instance: dg.DagsterInstance, spec: ReleaseSpec, digest: str):
    """Every must_pass verdict for `digest`, re-read from the instance, judged for promotion."""
    gated = sorted({g.target for g in spec.gates})
    required = [(g.target, g.name) for g in spec.gates if g.must_pass]
    return judge_promotion(
        required,
        {pair: _history(instance, *pair) for pair in required},
        digest,
        spec.spec_hash,
        {dataset: _materialized_at(instance, dataset) for dataset in gated},
    )


def lineage_of(context: dg.AssetExecutionContext, spec: ReleaseSpec, candidate_run: str) -> dict:
    """Run ids, the data versions of the datasets and the feature code (or prompt version)."""
    instance = context.instance
    llm = spec.model.task == "llm"
    datasets = (
        keys.LLM_DATASETS
        if llm
        else (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG)
    )
    return {
        "run_id": context.run.run_id,
        "candidate_run_id": candidate_run,
        **{f"data_version.{asset}": _data_version(instance, asset) for asset in datasets},
        **(
            {keys.PROMPT_VERSION: _prompt_version(instance)}
            if llm
            else {"feature_code": spec.features.code}
        ),
    }


def _prompt_version(instance: dg.DagsterInstance) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(keys.CANDIDATE_MODEL))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return _value(metadata, keys.PROMPT_VERSION)


def build_release_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The release_decision asset for `spec`."""
    gated = sorted({g.target for g in spec.gates})

    @dg.asset(
        name=keys.RELEASE_DECISION,
        group_name=keys.RELEASE_GROUP,
        deps=[keys.CANDIDATE_MODEL, *gated],
        required_resource_keys={"model_registry"},
        pool=keys.WAREHOUSE_POOL,
    )
    def release_decision(context: dg.AssetExecutionContext):
        """Promotion: moves `production` only if every must_pass verdict for this digest passed."""
        instance = context.instance
        candidate = instance.get_latest_materialization_event(dg.AssetKey(keys.CANDIDATE_MODEL))
        if candidate is None or candidate.asset_materialization is None:
            raise dg.Failure("candidate_model has never been materialized: nothing to release")
        metadata = candidate.asset_materialization.metadata
        version = str(_value(metadata, keys.CANDIDATE_VERSION))
        digest = str(_value(metadata, keys.CANDIDATE_DIGEST))
        decision = offline_decision(instance, spec, digest)
        lineage = lineage_of(context, spec, candidate.run_id)
        registry = context.resources.model_registry.get()
        live = registry.alias(spec.model.name, PRODUCTION)
        if spec.canary.enabled and decision.promote and live not in (None, version):
            # Every offline gate passed: the canary_rollout job takes it from here.
            event = registry.record(
                spec.model.name,
                "gated",
                version=version,
                digest=digest,
                spec_hash=spec.spec_hash,
                verdicts=decision.verdicts,
                lineage=lineage,
                reason="every must_pass gate passed; awaiting the canary (canary.enabled)",
            )
            return dg.MaterializeResult(
                metadata={
                    "decision": "awaiting canary",
                    keys.CANDIDATE_VERSION: version,
                    keys.CANDIDATE_DIGEST: digest,
                    "ledger_seq": event.seq,
                    keys.SPEC_HASH: spec.spec_hash,
                    "verdicts": dg.MetadataValue.json(decision.verdicts),
                },
                data_version=dg.DataVersion(digest),
            )
        event = apply_decision(
            registry,
            spec.model.name,
            version,
            digest,
            decision,
            spec_hash=spec.spec_hash,
            lineage=lineage,
        )
        context.log.info(f"promoted {version}" if event else f"{version} already in production")
        return dg.MaterializeResult(
            metadata={
                "decision": "promoted" if event else "already in production",
                keys.CANDIDATE_VERSION: version,
                keys.CANDIDATE_DIGEST: digest,
                "replaced": (event.from_version if event else None) or "none (no baseline)",
                "ledger_seq": event.seq if event else -1,
                keys.SPEC_HASH: spec.spec_hash,
                "verdicts": dg.MetadataValue.json(decision.verdicts),
                "lineage": dg.MetadataValue.json(lineage),
            },
            data_version=dg.DataVersion(digest),
        )

    return [release_decision]


def _data_version(instance: dg.DagsterInstance, asset: str) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    return event.asset_materialization.tags.get("dagster/data_version")
