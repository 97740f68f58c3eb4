"""Data-contract checks: one multi-check per dataset, so all its gates share one scan."""

from pathlib import Path

import dagster as dg

from checks.metadata import check_description, check_result, run_candidate
from ml_release import keys
from ml_release.contract.run import run_contract, run_parity
from ml_release.feature_code import load_feature_code
from ml_release.gates.catalog import CATALOG
from ml_release.resource_types import Folder, RegistrySource, WarehouseSource
from ml_release.sources import data_version
from ml_release.spec import GateSpec, ReleaseSpec


def _spec(spec: ReleaseSpec, gate: GateSpec, additional: list[str]) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=gate.id,
        asset=spec.key(gate.target),
        blocking=gate.must_pass,
        description=check_description(gate),
        additional_deps=[spec.key(name) for name in additional],
    )


def _contract_check(spec: ReleaseSpec, target: str, gates: list[GateSpec]):
    @dg.multi_asset_check(
        name=spec.named(f"{target}_data_contract"),
        specs=[_spec(spec, g, [keys.CONTRACT_REFERENCE, keys.CANDIDATE_MODEL]) for g in gates],
        description=f"Data-contract gates of {target} against {keys.CONTRACT_REFERENCE}.",
        pool=spec.named(keys.WAREHOUSE_POOL),
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        report_store: dg.ResourceParam[Folder],
        model_registry: dg.ResourceParam[RegistrySource],
    ):
        candidate = run_candidate(context, spec, model_registry.get())
        with warehouse.get(spec.model.name).held() as client:
            results = run_contract(client, spec, target)
            version = data_version(client, load_feature_code(spec.features.code).version)
        reports = Path(report_store.path) / context.run.run_id
        for gate, result in zip(gates, results, strict=True):
            result.data_version = version
            context.log.info(f"{gate.id} on {target}: {result.verdict.value}: {result.summary}")
            yield check_result(result, gate, spec, candidate, reports)

    return _check


def _parity_check(spec: ReleaseSpec, gate: GateSpec):
    @dg.multi_asset_check(
        name=spec.named(f"{gate.id}_check"),
        specs=[_spec(spec, gate, [keys.SERVING_LOG, keys.CANDIDATE_MODEL])],
        description="Logged serving features against the shared feature code, row by row.",
        pool=spec.named(keys.WAREHOUSE_POOL),
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
    ):
        candidate = run_candidate(context, spec, model_registry.get())
        with warehouse.get(spec.model.name).held() as client:
            result = run_parity(client, spec, gate.params)  # type: ignore[arg-type]
            result.data_version = data_version(
                client, load_feature_code(spec.features.code).version
            )
        context.log.info(f"{gate.id}: {result.verdict.value}: {result.summary}")
        yield check_result(result, gate, spec, candidate)

    return _check


def build_contract_checks(spec: ReleaseSpec) -> list[dg.AssetChecksDefinition]:
    """The data-contract and parity checks the spec's gates ask for."""
    checks = []
    for target in keys.CONTRACT_DATASETS:
        gates = [g for g in spec.gates_for(target) if CATALOG[g.name].family == "data_contract"]
        if gates:
            checks.append(_contract_check(spec, target, gates))
    for gate in spec.gates:
        if CATALOG[gate.name].family == "parity":
            checks.append(_parity_check(spec, gate))
    return checks
