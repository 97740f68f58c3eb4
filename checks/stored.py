"""Checks reading the verdicts a report asset computed and stored for the same run.

`evaluation_report` and `serving_report` judge all their gates in one pass (the measurements are
the expensive part) and store the results; one multi-check per report reads them back. A check
that finds no result for its run fails.
"""

import dagster as dg

from checks.metadata import check_description, check_result, run_candidate
from ml_release.gates.store import load_results
from ml_release.resource_types import RegistrySource, WarehouseSource
from ml_release.spec import GateSpec, ReleaseSpec


def build_stored_checks(
    spec: ReleaseSpec, gates: list[GateSpec], asset: str, kind: str
) -> list[dg.AssetChecksDefinition]:
    """One multi-check on `asset` emitting `gates` (none when there are no gates)."""
    if not gates:
        return []

    @dg.multi_asset_check(
        name=spec.named(f"{asset}_gates"),
        specs=[
            dg.AssetCheckSpec(
                g.id, asset=spec.key(asset), blocking=g.must_pass, description=check_description(g)
            )
            for g in gates
        ],
        description=f"{kind} gates judged by {asset} in this run.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
    ):
        candidate = run_candidate(context, spec, model_registry.get())
        results = load_results(warehouse.get(spec.model.name), context.run.run_id)
        missing = [g.id for g in gates if g.id not in results]
        if missing:
            raise dg.Failure(
                f"{asset} stored no result for {', '.join(missing)} in this run: "
                f"materialize {asset} and its checks in the same run"
            )
        for gate in gates:
            result = results[gate.id]
            context.log.info(f"{gate.id}: {result.verdict.value}: {result.summary}")
            yield check_result(result, gate, spec, candidate)

    return [_check]
