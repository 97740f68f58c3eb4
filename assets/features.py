"""Feature assets: the shared feature code applied to each dataset."""

import dagster as dg

from ml_release import keys
from ml_release.contract.run import store_reference_profile
from ml_release.feature_code import load_feature_code
from ml_release.featurize import build_features
from ml_release.resource_types import WarehouseSource
from ml_release.spec import ReleaseSpec

DESCRIPTIONS = {
    keys.TRAINING_FEATURES: "Training features; also the data contract's reference profile.",
    keys.EVALUATION_FEATURES: "Evaluation features, computed with the shared feature code.",
    keys.SERVING_FEATURES_RECOMPUTED: "Features recomputed from the logged raw serving requests.",
}


def _feature_asset(spec: ReleaseSpec, name: str, code_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.key(name),
        deps=[spec.key(keys.FEATURE_SOURCES[name])],
        group_name=spec.named(keys.FEATURES_GROUP),
        description=DESCRIPTIONS[name],
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"duckdb", "pandas"},
        code_version=code_version,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[WarehouseSource]):
        with warehouse.get(spec.model.name).held() as client:
            rows = build_features(client, spec, name)
            metadata: dict = {
                "dagster/row_count": rows,
                "feature_code": spec.features.code,
                "feature_code_version": code_version,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c, t) for c, t in client.columns(name).items()]
                ),
            }
            if name == keys.CONTRACT_REFERENCE:
                profile = store_reference_profile(client, spec, name)
                metadata["reference_profile_columns"] = len(profile.columns)
            context.log.info(f"{name}: {rows} rows")
            return dg.MaterializeResult(metadata=metadata)

    return _asset


def build_feature_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The three feature assets."""
    version = load_feature_code(spec.features.code).version
    return [_feature_asset(spec, name, version) for name in DESCRIPTIONS]
