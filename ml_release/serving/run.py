"""One serving check run: the candidate, production and a production replica served side by side.

The replica is production started a second time: the difference between the two production
servers is the run-to-run noise the relative gates allow for. With no production model yet,
only the candidate is served and the relative gates have nothing to compare with.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml_release import keys
from ml_release.artifacts.manifest import Manifest, read_manifest
from ml_release.identifiers import quote
from ml_release.serving.group import ServerStartError, serve_group
from ml_release.serving.measure import (
    CANDIDATE,
    PRODUCTION,
    REPLICA,
    ServerMeasurement,
    measure_servers,
)
from ml_release.serving.server import ServerOptions
from ml_release.spec import ReleaseSpec, ServingSpec
from ml_release.subjects import ModelRef
from ml_release.warehouse import Warehouse


@dataclass
class ServingReport:
    """Measurements of one run, and what the gates compare them with."""

    measurements: dict[str, ServerMeasurement]
    manifest: Manifest
    contract: dict[str, str]

    @property
    def candidate(self) -> ServerMeasurement:
        """The candidate's measurement."""
        return self.measurements[CANDIDATE]

    @property
    def production(self) -> ServerMeasurement | None:
        """Production's measurement, when a production model exists."""
        return self.measurements.get(PRODUCTION)

    @property
    def replica(self) -> ServerMeasurement | None:
        """The second production server's measurement."""
        return self.measurements.get(REPLICA)


def run_serving_checks(
    candidate: ModelRef,
    production: ModelRef | None,
    store_root: Path,
    rows: pd.DataFrame,
    contract: dict[str, str],
    settings: ServingSpec,
    options: ServerOptions,
    workdir: Path,
    model_name: str,
    progress: Callable[[str], None] = lambda message: None,
) -> ServingReport:
    """Serve the candidate (and production twice), measure them all, stop every server.

    Args:
        candidate: The candidate, verified against the registry.
        production: Production, verified, or None before the first promotion.
        store_root: The artifact store.
        rows: Raw rows the requests are built from.
        contract: Raw column → kind the production clients send.
        settings: The spec's `serving` section.
        options: Runtime and limits of the servers.
        workdir: Scratch folder for the servers' settings and logs (removed after).
        model_name: Name the servers serve the model under.
        progress: Called with lines of progress.
    """
    plan = [(CANDIDATE, candidate)]
    if production is not None:
        plan += [(PRODUCTION, production), (REPLICA, production)]
    try:
        # The candidate starts alone: its load time is what serving_load_time judges.
        group = serve_group(
            plan, store_root, workdir, options, model_name, progress, alone=CANDIDATE
        )
        with group as servers:
            measurements = measure_servers(servers, rows, contract, settings, progress)
    except ServerStartError as exc:
        if exc.role != CANDIDATE:
            raise
        failed = ServerMeasurement(CANDIDATE, candidate.version, float("nan"))
        failed.load_error = str(exc)
        return ServingReport({CANDIDATE: failed}, read_manifest(candidate.folder), contract)
    return ServingReport(measurements, read_manifest(candidate.folder), contract)


def request_rows(warehouse: Warehouse, spec: ReleaseSpec, contract: dict[str, str]) -> pd.DataFrame:
    """A seeded sample of evaluation-holdout rows, in the request contract's columns."""
    columns = ", ".join(quote(c) for c in contract)
    order = f"hash({quote(spec.data.id_column)}, {int(spec.serving.seed)})"
    return warehouse.frame(
        f"SELECT {columns} FROM {quote(keys.EVALUATION_HOLDOUT)} ORDER BY {order} LIMIT ?",
        [spec.serving.requests],
    )
