"""Shared fixtures: an isolated ML_RELEASE_HOME, small demo data, and a built warehouse."""

# First, before the libraries: it halves skops' import in every test process (its docstring).
import ml_release.skops_order  # noqa: F401

# isort: split
import os
import signal
import sys
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from absl import logging as absl_logging

from ml_release import keys
from ml_release.contract.run import store_reference_profile
from ml_release.demo.generate import DemoData, generate, write_demo_data
from ml_release.errors import SpecError
from ml_release.featurize import build_features
from ml_release.gates.serving import serving_gates
from ml_release.gates.shadow import shadow_gates
from ml_release.home import warehouse_path
from ml_release.sources import load_source
from ml_release.spec import ReleaseSpec, load_spec
from ml_release.warehouse import Warehouse

# absl (rouge_score's logging, behind ragas' ROUGE metric) binds its handler to whatever
# sys.stderr is when it is imported: under pytest, the global capture file. A later
# logging.config.dictConfig (Dagster calls one) closes every handler's stream, that file
# included, and every later test on the worker fails with "I/O operation on closed file".
absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__

# Records the reliability suite's outcomes for docs/reliability.md (`make reliability`).
pytest_plugins = ["tests.reliability_report"]

# Tests choose their registry themselves: never one a developer's shell configured.
os.environ.pop("ML_RELEASE_REGISTRY_URL", None)

PROJECT = Path(__file__).resolve().parents[1]
# Every test shares one serving-runtime virtualenv (built once, `make test` builds it first).
RUNTIME_DIR = Path(os.environ.get("ML_RELEASE_RUNTIME_DIR") or PROJECT / ".ml_release" / "runtime")
SERVING_GATES = {g.name for g in [*serving_gates(), *shadow_gates()]}
SMALL = {"n_training": 6000, "n_evaluation": 3000, "n_serving": 2000}

# `make test` hands whole files to its workers (`--dist loadfile --no-loadscope-reorder`) in
# collection order: the longest files first (minutes each on 2 cores, reports/junit.xml has the
# latest), so no worker picks up a several-minute file when the others are nearly done.
LONGEST_FIRST = (
    "test_deployment.py",
    "test_browser.py",
    "test_reliability_faults.py",
    "test_docs.py",
    "test_coverage.py",
    "test_integrity_blackbox.py",
    "test_model_scenarios.py",
    "test_serving_tasks.py",
    "test_rollback.py",
    "test_serving.py",
    "test_exit_codes.py",
    "test_coverage_servers.py",
    "test_graph.py",
    "test_coverage_tasks.py",
    "test_canary.py",
    "test_pool_recovery.py",
    "test_cli.py",
    "test_shadow.py",
    "test_router.py",
    "test_task_release.py",
    "test_contract_gates.py",
    "test_install.py",
    "test_coverage_llm.py",
)


def _needs_postgres(item: pytest.Item) -> bool:
    """The test uses the session's PostgreSQL server: directly, or as a backend parameter."""
    callspec = getattr(item, "callspec", None)
    return "postgres" in getattr(item, "fixturenames", ()) or (
        callspec is not None and "postgres" in callspec.params.values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (LONGEST_FIRST), every other file after them in its own order;
    the marker `server` on every test that needs the PostgreSQL server (`make check` skips them).
    """
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    for item in items:
        if _needs_postgres(item):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _signal_handlers_of_the_process():
    """SIGINT/SIGTERM as they were before each test. Dagster's in-process runs in the main thread
    (execute_in_process) leave SIGTERM set to SIGINT's handler (dagster._utils.interrupts); when
    the suite was started with SIGINT ignored (a background job), that is SIG_IGN, which every
    later child process of the worker inherits and no SIGTERM stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def _spec_of_the_process(monkeypatch):
    """`main(["--spec", ...])` makes that spec the process's (ML_RELEASE_SPEC, for the
    processes it starts): undone after each test, so the next test reads its own."""
    monkeypatch.delenv("ML_RELEASE_SPEC", raising=False)


@pytest.fixture(scope="session")
def demo() -> DemoData:
    """Small demo datasets, generated once per session."""
    return generate(seed=11, **SMALL)


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A fresh ML_RELEASE_HOME (and Dagster home) for one test."""
    monkeypatch.setenv("ML_RELEASE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("ML_RELEASE_RUNTIME_DIR", str(RUNTIME_DIR))
    (tmp_path / "dagster").mkdir()
    return tmp_path / "home"


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for this test session (tests/servers.py)."""
    from tests.servers import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=["duckdb", "postgres"])
def registry_location(request, tmp_path) -> Path | str:
    """Where a test's registry lives: the embedded DuckDB file, then a PostgreSQL database."""
    if request.param == "duckdb":
        return tmp_path / "registry.duckdb"
    return request.getfixturevalue("postgres").create_schema("registry")


@pytest.fixture()
def registry(registry_location):
    """An empty registry on each backend."""
    from ml_release.registry import Registry

    return Registry(registry_location, lock_timeout=30)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an `ml-release` child process working in `home`."""
    return {
        **os.environ,
        "ML_RELEASE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ML_RELEASE_RUNTIME_DIR": str(RUNTIME_DIR),
        "COLUMNS": "200",
        **extra,
    }


def spec_dict(serving: bool = False, **overrides) -> dict:
    """The project's release.yaml as a dict, with top-level keys replaced.

    Without `serving`, the serving gates are left out: they start model servers, which only the
    tests about serving need.
    """
    data = yaml.safe_load((PROJECT / "release.yaml").read_text())
    if not serving:
        data["gates"] = [g for g in data["gates"] if g["name"] not in SERVING_GATES]
    data.update(overrides)
    return data


def write_spec(folder: Path, data: dict) -> Path:
    """Write a spec dict as release.yaml into `folder`."""
    path = folder / "release.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def spec_error(folder: Path, data: dict) -> str:
    """The SpecError message of loading `data` written into `folder`; it must name the file."""
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(folder, data))
    message = str(caught.value)
    assert str(folder / "release.yaml") in message
    return message


@pytest.fixture()
def make_release(home, tmp_path, demo):
    """Write (optionally broken) demo data and a spec; returns (spec, data folder)."""

    def make(data: DemoData | None = None, **spec_overrides) -> ReleaseSpec:
        write_demo_data(home / "demo", data or demo)
        return load_spec(write_spec(tmp_path, spec_dict(**spec_overrides)))

    return make


def build_warehouse(spec: ReleaseSpec) -> Warehouse:
    """Load the three datasets and compute the three feature tables."""
    warehouse = Warehouse(warehouse_path(), lock_timeout=10)
    for dataset in (keys.TRAINING_SNAPSHOT, keys.EVALUATION_HOLDOUT, keys.SERVING_LOG):
        load_source(warehouse, spec.source_for(dataset), dataset)
    for table in keys.FEATURE_SOURCES:
        build_features(warehouse, spec, table)
    store_reference_profile(warehouse, spec, keys.TRAINING_FEATURES)
    return warehouse


@pytest.fixture()
def built(make_release):
    """A spec and a warehouse built from healthy demo data."""
    spec = make_release()
    return spec, build_warehouse(spec)


def replace_table(warehouse: Warehouse, table: str, frame: pd.DataFrame) -> None:
    """Overwrite a warehouse table with a DataFrame (to inject a broken variant)."""
    with warehouse.connect() as connection:
        connection.register("frame", frame)
        connection.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM frame')


def read_table(warehouse: Warehouse, table: str) -> pd.DataFrame:
    """A warehouse table as a DataFrame."""
    with duckdb.connect(str(warehouse.path)) as connection:
        return connection.sql(f'SELECT * FROM "{table}"').df()


def gate(spec: ReleaseSpec, defs=None, instance=None, job=None, candidate=None):
    """Prepare a candidate (trained, or `candidate`) and run `job` (default: every asset but
    production_model) for its partition; returns (digest, result)."""
    import dagster as dg

    from ml_release.candidates import prepare_candidate
    from ml_release.home import artifacts_dir, quarantine_dir, registry_path
    from ml_release.jobs import add_candidate
    from ml_release.registry import Registry

    if defs is None:
        from ml_release.definitions import build_definitions

        defs = build_definitions(spec)
    instance = instance or dg.DagsterInstance.ephemeral()
    registry = Registry(registry_path())
    prepared = prepare_candidate(spec, candidate, artifacts_dir(), registry, quarantine_dir())
    add_candidate(instance, spec.model.name, prepared.digest)
    if job is None:
        everything = dg.AssetSelection.all() - dg.AssetSelection.assets(keys.PRODUCTION_MODEL)
        job = dg.define_asset_job("everything", selection=everything)
    if not isinstance(job, str):
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        job = job.name
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, partition_key=prepared.digest
    )
    return prepared.digest, result


def demo_artifact(
    data: DemoData,
    parent: Path,
    *,
    name: str,
    version: str,
    c: float = 1.0,
    shuffle: int | None = None,
) -> Path:
    """An artifact of the demo's logistic regression (`shuffle`: labels shuffled, no signal)."""
    import numpy as np

    from ml_release.artifacts.writer import write_artifact
    from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
    from ml_release.model import build_pipeline

    labels = data.training["defaulted"].to_numpy()
    if shuffle is not None:
        labels = np.random.default_rng(shuffle).permutation(labels)
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": c}
    )
    fitted = pipeline.fit(data.training[list(REQUIRED_COLUMNS)], labels)
    return write_artifact(fitted, parent, name=name, version=version, features=REQUIRED_COLUMNS)
