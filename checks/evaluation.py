"""Model-quality checks on `evaluation_report`: the verdicts it computed for this run."""

import dagster as dg

from checks.metadata import check_result
from ml_release import keys
from ml_release.evaluation.run import load_results, model_gates
from ml_release.gates.catalog import CATALOG
from ml_release.jobs import latest_candidate
from ml_release.spec import ReleaseSpec


def build_evaluation_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """One multi-check emitting every model-quality gate of the spec."""
    gates = model_gates(spec)
    if not gates:
        return []

    @dg.multi_asset_check(
        name="evaluation_report_gates",
        specs=[
            dg.AssetCheckSpec(
                g.name,
                asset=keys.EVALUATION_REPORT,
                blocking=g.must_pass,
                description=CATALOG[g.name].summary,
            )
            for g in gates
        ],
        description="Model-quality gates judged by evaluation_report in this run.",
        required_resource_keys={"warehouse"},
    )
    def _check(context: dg.AssetCheckExecutionContext):
        results = load_results(context.resources.warehouse.get(), context.run.run_id)
        missing = [g.name for g in gates if g.name not in results]
        if missing:
            raise dg.Failure(
                f"evaluation_report stored no result for {', '.join(missing)} in this run: "
                "materialize evaluation_report and its checks in the same run"
            )
        candidate = latest_candidate(context.instance)
        for gate in gates:
            result = results[gate.name]
            context.log.info(f"{gate.name}: {result.verdict.value}: {result.summary}")
            yield check_result(result, gate, spec, candidate)

    return [_check]
