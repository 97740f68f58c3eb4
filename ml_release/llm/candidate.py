"""The prompt/config under release as an artifact: published, stored, registered, read back.

The config's `version` is the registry version; the manifest's `extra` records it as
`prompt_version` with the model name and retrieval settings, so the ledger, `ml-release
history` and a rollback all name prompt versions.
"""

from pathlib import Path

from ml_release.artifacts import CONFIG_FILE, read_manifest, verify_artifact
from ml_release.artifacts.config import write_config_artifact
from ml_release.candidates import Candidate, import_candidate
from ml_release.errors import DataInputError, IntegrityError
from ml_release.keys import PROMPT_VERSION
from ml_release.llm.config import PromptConfig, load_config, parse_config
from ml_release.registry import Registry
from ml_release.spec import ReleaseSpec
from ml_release.store import import_artifact


def config_extra(config: PromptConfig) -> dict[str, str]:
    """What the manifest's `extra` records about a prompt/config."""
    return {
        PROMPT_VERSION: config.version,
        "llm_model": config.model,
        "retrieval": f"{config.retrieval.method} top_k={config.retrieval.top_k}",
    }


def write_config(config: PromptConfig, dest_parent: Path, spec_hash: str | None = None) -> Path:
    """`config` as an `llm_config` artifact folder in `dest_parent`."""
    return write_config_artifact(
        config.canonical_bytes(),
        dest_parent,
        name=config.name,
        version=config.version,
        spec_hash=spec_hash,
        extra=config_extra(config),
    )


def store_config(
    config: PromptConfig, store_root: Path, registry: Registry, spec_hash: str
) -> Candidate:
    """Write `config` as an artifact, place it in the store, register it (idempotent)."""
    written = write_config(config, store_root / ".staging", spec_hash)
    registered, created, folder = import_artifact(written, store_root, registry, move=True)
    return Candidate(read_manifest(folder), folder, registered.version, created, "prompt/config")


def check_config_bytes(data: bytes, where: str) -> PromptConfig:
    """A prompt/config artifact's payload, parsed; IntegrityError when it is not one."""
    try:
        return parse_config(data.decode("utf-8"), where)
    except (UnicodeDecodeError, DataInputError) as exc:
        raise IntegrityError(f"{where} is not a valid prompt/config: {exc}") from None


def read_config(folder: Path, digest: str | None = None) -> PromptConfig:
    """The prompt/config of a stored artifact, after verifying its digest (the registry's)."""
    manifest = verify_artifact(Path(folder), digest)
    if manifest.kind != "llm_config":
        raise IntegrityError(
            f"{folder} holds a {manifest.kind} artifact, not a prompt/config: the LLM release "
            "gates prompt/config artifacts only"
        )
    path = Path(folder) / CONFIG_FILE
    config = parse_config(path.read_text(encoding="utf-8"), str(path))
    if config.version != manifest.version:
        raise IntegrityError(
            f"{path} says version {config.version!r}, its manifest {manifest.version!r}"
        )
    return config


def gate_candidate(
    source: Path, spec: ReleaseSpec, store_root: Path, registry: Registry, quarantine_root: Path
) -> Candidate:
    """The candidate of an LLM release: an artifact folder, or a prompt/config file to publish.

    Raises:
        DataInputError: The file is not a valid prompt/config, or names another application.
        IntegrityError: The folder is not a verified `llm_config` artifact of this application.
    """
    app = spec.model.name
    if source.is_dir():
        candidate = import_candidate(
            source, spec, store_root, registry, quarantine_root, way_in="run --candidate"
        )
        read_config(candidate.folder, candidate.digest)
        return candidate
    config = load_config(source)
    if config.name != app:
        raise DataInputError(
            f"{source}: prompt/config name {config.name!r} is not the spec's model.name "
            f"{app!r}; rename one of them"
        )
    return store_config(config, store_root, registry, spec.spec_hash)
