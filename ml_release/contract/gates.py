"""The data-contract gates of one dataset, judged from a reference profile and one profile.

`evaluate_contract` profiles the target once and returns one `GateResult` per requested gate.
A column the target lacks (or holds with the wrong type) is "not evaluated" by the value gates:
their verdict is then at best inconclusive, never a pass, and `feature_schema` names the cause.
"""

from collections.abc import Callable

import duckdb

from ml_release.contract.drift import categorical_drift, numeric_drift
from ml_release.contract.evidence import ContractInputs
from ml_release.contract.profile import Profile
from ml_release.contract.schema import check_feature_schema
from ml_release.contract.target_profile import profile_target
from ml_release.contract.values import allowed_ranges, feature_range, null_rate_threshold
from ml_release.gates.catalog import GateParams
from ml_release.gates.result import GateResult, Verdict
from ml_release.spec import GateSpec, ReleaseSpec

VALUE_GATES: dict[str, Callable[[ContractInputs, GateSpec], GateResult]] = {
    "null_rate_threshold": null_rate_threshold,
    "feature_range": feature_range,
    "numeric_drift": numeric_drift,
    "categorical_drift": categorical_drift,
}


def _first(gates: list[GateSpec], name: str) -> GateParams | None:
    return next((g.params for g in gates if g.name == name), None)


def evaluate_contract(
    connection: duckdb.DuckDBPyConnection,
    spec: ReleaseSpec,
    target_name: str,
    target: tuple[str, list],
    reference_relation: tuple[str, list],
    reference: Profile,
    gates: list[GateSpec],
    id_columns: list[str],
) -> list[GateResult]:
    """Judge every contract gate of one dataset from one profile of it (two scans)."""
    ranges = allowed_ranges(spec, reference, _first(gates, "feature_range"))  # type: ignore[arg-type]
    profile = profile_target(connection, target[0], target[1], reference, ranges)
    inputs = ContractInputs(spec, target_name, reference, profile, connection, target, id_columns)
    results = []
    for gate in gates:
        if gate.name == "feature_schema":
            contract_columns = list(dict.fromkeys([*spec.features.all, *spec.data.segments]))
            result = check_feature_schema(
                connection,
                target,
                reference_relation,
                contract_columns,
                [*id_columns, spec.data.timestamp_column, spec.data.label],
                gate.params,  # type: ignore[arg-type]
            )
            result.target = target_name
        elif profile.rows == 0 or reference.rows == 0:
            result = GateResult(
                gate.name,
                target_name,
                Verdict.INCONCLUSIVE,
                "the dataset or its reference has no rows: nothing to judge",
                "n/a",
                support={"rows": profile.rows, "reference_rows": reference.rows},
            )
        else:
            result = VALUE_GATES[gate.name](inputs, gate)
        result.spec_hash = spec.spec_hash
        results.append(result)
    return results
