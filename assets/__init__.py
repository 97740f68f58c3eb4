"""Dagster assets of the release graph: thin bodies over ml_release functions."""

import dagster as dg

from assets.canary import build_canary_assets
from assets.data import build_data_assets
from assets.evaluation import build_evaluation_assets
from assets.features import build_feature_assets
from assets.models import build_model_assets, production_model_spec
from assets.release import build_release_assets
from assets.serving import build_serving_assets
from assets.shadow import build_shadow_assets
from ml_release.spec import ReleaseSpec


def build_assets(
    spec: ReleaseSpec, chained: bool = True
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every asset of the release graph for `spec`, and `production_model`.

    `chained` (the default): the serving and shadow stages wait for the stage before them, so
    a blocked candidate is not served (`assets.serving.build_serving_assets`).
    """
    return [*_gated_assets(spec, chained), production_model_spec(spec)]


def _gated_assets(spec: ReleaseSpec, chained: bool) -> list[dg.AssetsDefinition]:
    if spec.model.task == "llm":
        # Only an LLM spec loads the LLM modules (and the `llm` extra they need).
        from assets.llm import build_llm_assets

        return [*build_llm_assets(spec), *build_release_assets(spec)]
    if spec.model.task == "ranking":
        return [
            *build_data_assets(spec),
            *build_feature_assets(spec),
            *build_model_assets(spec),
            *build_evaluation_assets(spec),
            *build_release_assets(spec),
        ]
    return [
        *build_data_assets(spec),
        *build_feature_assets(spec),
        *build_model_assets(spec),
        *build_evaluation_assets(spec),
        *build_serving_assets(spec, chained),
        *build_shadow_assets(spec, chained),
        *build_release_assets(spec),
        *build_canary_assets(spec),
    ]
