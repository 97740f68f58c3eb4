"""What the release assets, checks and sensors need from each Dagster resource, as types.

Asset and check functions take their resources as typed parameters
(`warehouse: dg.ResourceParam[WarehouseSource]`), the names being the resource keys. The types
are these protocols, not the resource classes of `resources/`: the Dagster layers import only
the core (docs/decisions.md 4), and a deployment may bind any class with the same methods
(a server warehouse, an object-storage artifact store, its platform's traffic split).
`resources/__init__.py` holds the embedded implementations.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the annotations only: importing this module stays light
    from ml_release.llm.clients import LLMClient
    from ml_release.llm.judge import FaithfulnessJudge
    from ml_release.registry import Registry
    from ml_release.serving.server import ServerOptions
    from ml_release.serving.traffic import TrafficSplit
    from ml_release.spec import ReleaseSpec
    from ml_release.warehouse import Warehouse


class WarehouseSource(Protocol):
    """`warehouse`: the warehouse the datasets, features and results live in."""

    def get(self, model: str = "") -> "Warehouse":
        """A warehouse client (of `model`, where each model has its own)."""
        ...


class RegistrySource(Protocol):
    """`model_registry`: the registry and its ledger."""

    def get(self) -> "Registry":
        """A registry client."""
        ...


class Folder(Protocol):
    """`artifact_store` and `report_store`: a root folder."""

    path: str


class ArtifactInbox(Protocol):
    """`artifact_inbox`: where candidates arrive, and where refused ones are moved."""

    def folders(self) -> tuple[Path, Path]:
        """(incoming, quarantine)."""
        ...


class ServingRuntime(Protocol):
    """`serving_runtime`: how to start the model servers of a spec."""

    def options(
        self, spec: "ReleaseSpec", app_dir: Path, progress: Callable[[str], None]
    ) -> "ServerOptions":
        """Server options for `spec` (the runtime is built when missing)."""
        ...


class LLMClientSource(Protocol):
    """`llm_client`: the client LLM specs answer with, and the judge if one is configured."""

    def client(self) -> "LLMClient":
        """The client that answers the RAG set's questions."""
        ...

    def judge(self) -> "FaithfulnessJudge | None":
        """The faithfulness judge, or None."""
        ...


class TrafficSplits(Protocol):
    """`traffic_split`: the canary's split between production and the candidate."""

    def state_file(self, model: str) -> Path:
        """The marker of `model`'s canary in progress."""
        ...

    def open(
        self, production_port: int, candidate_port: int, model: str, timeout_s: float
    ) -> AbstractContextManager["TrafficSplit"]:
        """The split for one canary, torn down when its `with` block ends."""
        ...
