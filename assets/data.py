"""Data assets: the training snapshot, evaluation holdout and serving log, in the warehouse."""

import dagster as dg

from ml_release import keys
from ml_release.resource_types import WarehouseSource
from ml_release.source_needs import check_role_columns, role_needs
from ml_release.sources import load_source, loaded_fingerprints, row_key
from ml_release.spec import ReleaseSpec

DESCRIPTIONS = {
    keys.TRAINING_SNAPSHOT: "Training snapshot copied from its source into the warehouse.",
    keys.EVALUATION_HOLDOUT: "Evaluation holdout copied from its source into the warehouse.",
    keys.SERVING_LOG: "Serving request log (raw requests, logged features, production answers).",
}


def _data_asset(spec: ReleaseSpec, name: str) -> dg.AssetsDefinition:
    source = spec.source_for(name)

    @dg.asset(
        key=spec.key(name),
        group_name=spec.named(keys.DATA_GROUP),
        description=DESCRIPTIONS[name],
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"duckdb"},
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[WarehouseSource]):
        with warehouse.get(spec.model.name).held() as warehouse:
            rows = load_source(warehouse, source, name, spec.model.task, unique=row_key(spec, name))
            # The columns the listed gates and the model read, named here (as `validate` names
            # them), not as a binder error steps later.
            needs = role_needs(spec)[name]
            check_role_columns(
                warehouse.columns(name), needs, name, source.describe(), spec.model.task
            )
            digest = loaded_fingerprints(warehouse)[name]  # load_source hashed the file
            context.log.info(f"{name}: {rows} rows from {source.describe()}")
            return dg.MaterializeResult(
                metadata={
                    "dagster/row_count": rows,
                    "source": source.describe(),
                    "fingerprint": digest,
                    "spec_hash": spec.spec_hash,
                },
                data_version=dg.DataVersion(digest),
            )

    return _asset


def build_data_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The three data assets, reading the sources `spec` names."""
    return [_data_asset(spec, name) for name in DESCRIPTIONS]
