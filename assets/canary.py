"""canary_rollout: traffic moved to the candidate in steps; promotion at 100 % or an abort."""

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.release import lineage_of, offline_decision
from assets.serving import candidate_and_production
from ml_release import keys
from ml_release.canary.controller import canary_evidence
from ml_release.canary.rollout import Candidate, rollout
from ml_release.feature_code import load_feature_code
from ml_release.gates.result import Verdict
from ml_release.home import release_home, temp_dir
from ml_release.jobs import latest_candidate
from ml_release.promotion import apply_decision
from ml_release.shadow.replay import load_window
from ml_release.spec import ReleaseSpec

CANARY_CHECK = "canary_analysis"


def build_canary_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """canary_rollout, when the spec enables canaries."""
    if not spec.canary.enabled:
        return []

    @dg.asset(
        name=keys.CANARY_ROLLOUT,
        deps=[keys.RELEASE_DECISION],
        group_name=keys.RELEASE_GROUP,
        required_resource_keys={"warehouse", "model_registry", "artifact_store", "serving_runtime"},
        check_specs=[
            dg.AssetCheckSpec(
                CANARY_CHECK,
                asset=keys.CANARY_ROLLOUT,
                blocking=True,
                description="Every canary step's anytime-valid analysis; fails on an abort.",
            )
        ],
        kinds={"mlserver"},
    )
    def canary_rollout(context: dg.AssetExecutionContext):
        """Steps of traffic to the candidate, analysed at each; promotes after the last one."""
        instance = context.instance
        version, digest = latest_candidate(instance)
        decision = offline_decision(instance, spec, digest)
        if not decision.promote:
            raise dg.Failure(
                f"{version} has not passed the offline gates, so it gets no traffic:\n  - "
                + "\n  - ".join(decision.problems)
            )
        (version, folder), production = candidate_and_production(context, spec)
        if production is None or production[0] == version:
            raise dg.Failure(
                "nothing to canary against: no other version is in production "
                "(a first release is promoted by release_decision)"
            )
        registry = context.resources.model_registry.get()
        contract = load_feature_code(spec.features.code).required_columns
        settings = spec.canary
        requests = load_window(
            context.resources.warehouse.get(),
            spec,
            contract,
            count=settings.requests_per_step * len(settings.steps),
        )
        workdir = temp_dir() / f"canary-{context.run.run_id}"
        result = rollout(
            spec,
            registry,
            Candidate(version, digest, folder),
            production,
            Path(context.resources.artifact_store.path),
            requests,
            contract,
            context.resources.serving_runtime.options(spec, workdir / "app", context.log.info),
            workdir,
            release_home() / "canary" / f"{spec.model.name}.json",
            progress=context.log.info,
        )
        steps = pd.DataFrame(
            [{"step_percent": look.step, **row} for look in result.looks for row in look.rows()]
        )
        passed = result.verdict is Verdict.PASS
        outcome = "canary passed" if passed else "canary aborted"
        if passed:
            decision.verdicts.append(
                {"dataset": keys.CANARY_ROLLOUT, "gate": CANARY_CHECK, "verdict": "pass"}
            )
            lineage = {**lineage_of(context, spec, context.run.run_id), "canary": result.reason}
            apply_decision(
                registry,
                spec.model.name,
                version,
                digest,
                decision,
                spec_hash=spec.spec_hash,
                lineage=lineage,
            )
        table = steps.to_markdown(index=False, floatfmt=".4g") if len(steps) else "_no look_"
        evidence = canary_evidence(result, CANARY_CHECK, keys.CANARY_ROLLOUT, spec.spec_hash)
        return dg.MaterializeResult(
            metadata={
                "decision": outcome,
                keys.CANDIDATE_VERSION: version,
                keys.CANDIDATE_DIGEST: digest,
                "baseline": production[0],
                "reason": result.reason,
                "steps": dg.MetadataValue.md(table),
                keys.SPEC_HASH: spec.spec_hash,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=CANARY_CHECK,
                    passed=passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=result.reason,
                    metadata={
                        **evidence.evidence(),
                        keys.CANDIDATE_VERSION: version,
                        keys.CANDIDATE_DIGEST: digest,
                        "summary": dg.MetadataValue.md(evidence.markdown()),
                        "failed_step": result.failed_step or -1,
                        "steps": dg.MetadataValue.md(table),
                    },
                )
            ],
        )

    return [canary_rollout]
