"""Running the data contract against the warehouse: the functions the Dagster checks call.

The reference profile of `training_features` is stored in the warehouse when that table is
built, so judging a dataset costs two scans of it (plus bounded example queries on failure).
"""

from datetime import UTC, datetime

from ml_release import keys
from ml_release.contract.gates import evaluate_contract
from ml_release.contract.parity import check_parity
from ml_release.contract.profile import Profile, profile_reference
from ml_release.errors import DataInputError
from ml_release.gates.catalog import NumericDriftParams, ParityParams
from ml_release.gates.result import GateResult
from ml_release.identifiers import quote
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

DEFAULT_BINS = 10


def contract_kinds(spec: ReleaseSpec) -> dict[str, str]:
    """Column → kind for every column under contract: features, then extra segment columns."""
    kinds = {c: "numeric" for c in spec.features.numeric}
    kinds |= {c: "categorical" for c in spec.features.categorical}
    for segment in spec.data.segments:
        kinds.setdefault(segment, "categorical")
    return kinds


def reference_bins(spec: ReleaseSpec) -> int:
    """Quantile bins the reference profile needs: the largest any numeric_drift gate asks for."""
    bins = [g.params.bins for g in spec.gates if isinstance(g.params, NumericDriftParams)]
    return max(bins, default=DEFAULT_BINS)


def store_reference_profile(warehouse: Warehouse, spec: ReleaseSpec, table: str) -> Profile:
    """Profile `table` as a contract reference and keep the profile in the warehouse."""
    with warehouse.connect() as connection:
        profile = profile_reference(
            connection, quote(table), [], contract_kinds(spec), reference_bins(spec)
        )
    with warehouse.transaction() as connection:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(keys.PROFILES_TABLE)} (table_name VARCHAR "
            "PRIMARY KEY, profile VARCHAR, spec_hash VARCHAR, created_at TIMESTAMPTZ)"
        )
        connection.execute(
            f"INSERT OR REPLACE INTO {quote(keys.PROFILES_TABLE)} VALUES (?, ?, ?, ?)",
            [table, profile.to_json(), spec.spec_hash, datetime.now(UTC)],
        )
    return profile


def reference_profile(warehouse: Warehouse, spec: ReleaseSpec, table: str) -> Profile:
    """The stored profile of `table`, recomputed when missing or made under another spec."""
    if not warehouse.exists(table):
        raise DataInputError(
            f"reference table {table!r} is not in {warehouse.path}: materialize "
            f"{keys.CONTRACT_REFERENCE} first (it is the contract's reference)."
        )
    if warehouse.exists(keys.PROFILES_TABLE):
        with warehouse.connect() as connection:
            rows = connection.execute(
                f"SELECT profile FROM {quote(keys.PROFILES_TABLE)} "
                "WHERE table_name = ? AND spec_hash = ?",
                [table, spec.spec_hash],
            ).fetchall()
        if rows:
            return Profile.from_json(rows[0][0])
    return store_reference_profile(warehouse, spec, table)


def run_contract(warehouse: Warehouse, spec: ReleaseSpec, target: str) -> list[GateResult]:
    """Judge the data-contract gates the spec attaches to `target`."""
    gates = [g for g in spec.gates_for(target) if g.name != "training_serving_parity"]
    reference = reference_profile(warehouse, spec, keys.CONTRACT_REFERENCE)
    present = warehouse.columns(target)
    ids = [
        c for c in (spec.data.id_column, spec.data.serving_log.request_id_column) if c in present
    ]
    with warehouse.connect() as connection:
        return evaluate_contract(
            connection,
            spec,
            target,
            (quote(target), []),
            (quote(keys.CONTRACT_REFERENCE), []),
            reference,
            gates,
            ids,
        )


def run_parity(warehouse: Warehouse, spec: ReleaseSpec, params: ParityParams) -> GateResult:
    """Judge training-serving parity on the serving log."""
    with warehouse.connect() as connection:
        return check_parity(
            connection, spec, keys.SERVING_LOG, keys.SERVING_FEATURES_RECOMPUTED, params
        )
