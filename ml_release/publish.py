"""Publishing a candidate into `incoming/`: the one call a training job makes.

`publish_candidate(model, spec=...)` writes a fitted pipeline as an artifact; `publish_path`
(behind `ml-release register PATH`) takes an artifact folder or a `.skops` file. Either way the
artifact appears in `incoming/` in one rename, complete, for `new_model_artifact_sensor`.
"""

from pathlib import Path
from typing import Any

from ml_release.artifacts import safe_path
from ml_release.artifacts.skops_io import loads_checked
from ml_release.artifacts.writer import write_artifact
from ml_release.errors import DataInputError, IntegrityError
from ml_release.feature_code import load_feature_code
from ml_release.home import incoming_dir
from ml_release.intake import admit, refuse
from ml_release.registry import Registry
from ml_release.spec import ReleaseSpec
from ml_release.store import place_artifact


def publish_candidate(
    model: Any,
    spec: ReleaseSpec,
    *,
    version: str | None = None,
    training_data_fingerprint: str | None = None,
    extra: dict[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """Write a fitted model (raw rows in; probabilities or a prediction out) into `incoming/`.

    Args:
        model: Any fitted scikit-learn-API estimator or pipeline of the spec's task (a team's
            own pipeline, XGBoost or LightGBM, or `ml_release.model.build_pipeline(...)`);
            see docs/models.md.
        spec: The release spec: model name, feature code and spec hash come from it.
        version: Version label; default: UTC timestamp and digest prefix.
        training_data_fingerprint: What the model was trained on (a snapshot id or hash).
        extra: Free strings kept in the manifest, such as a prompt or config version.
        home: ML_RELEASE_HOME override.

    Returns:
        The published artifact folder.
    """
    code = load_feature_code(spec.features.code)
    return write_artifact(
        model,
        incoming_dir(home),
        name=spec.model.name,
        version=version,
        features=code.required_columns,
        training_data_fingerprint=training_data_fingerprint,
        spec_hash=spec.spec_hash,
        feature_code_version=code.version,
        extra=extra,
        task=spec.model.task,
        trusted_types=spec.trusted_types,
    )


def publish_path(
    path: Path,
    spec: ReleaseSpec,
    registry: Registry,
    quarantine_root: Path,
    version: str | None = None,
) -> Path:
    """Publish an artifact folder, a `.skops` model or a prompt/config into `incoming/`.

    Refused at the door first (`ml_release.intake`): an unsafe or corrupt artifact, another
    model's, or a version label registered with another digest never reaches `incoming/`; a
    copy goes to quarantine/ with its reason and the ledger records a `refused` event. A
    prompt/config file (YAML or JSON) is accepted when the spec is an LLM spec.

    Raises:
        IntegrityError: The artifact is unsafe, corrupt or another model's (exit 4).
        ConflictError: Its version is registered with another digest (exit 3).
    """
    if path.is_dir() and not path.is_symlink():
        manifest = admit(
            path,
            spec.model.name,
            registry,
            quarantine_root,
            source="register",
            copy=True,
            trusted=spec.trusted_types,
        )
        target = safe_path(incoming_dir(), f"{manifest.name}-{manifest.version}")
        place_artifact(path, target)
        return target
    if path.is_file() and path.suffix == ".skops":
        try:
            model = loads_checked(path.read_bytes(), str(path), trusted=spec.trusted_types)
        except IntegrityError as exc:
            refuse(
                path, exc, spec.model.name, registry, quarantine_root, source="register", copy=True
            )
            raise
        return publish_candidate(model, spec, version=version)
    if path.is_file() and path.suffix in (".yaml", ".yml", ".json") and spec.llm is not None:
        from ml_release.llm.candidate import write_config
        from ml_release.llm.config import load_config

        return write_config(load_config(path), incoming_dir(), spec.spec_hash)
    raise DataInputError(
        f"{path}: expected an artifact folder (with manifest.json) or a .skops model file. "
        "Fix: save the model with skops (never pickle) or call ml_release.publish_candidate."
    )
