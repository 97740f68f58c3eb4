"""Past one machine, on this one: a PostgreSQL instance and registry, steps on Celery workers.

Real servers on 127.0.0.1 (tests/servers.py): the Dagster instance is configured by
docs/examples/dagster-postgres.yaml as it stands, the registry by `ML_RELEASE_REGISTRY_URL`,
and `ml-release run` is driven as a user would. Then six releases of three models run at once
with their steps on two Celery worker processes (Redis broker): each run gates its own
candidate's digest, each step's events carry the pid of a worker, never the launcher's, and the
ledger holds one promotion and one block per model.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ml_release import keys
from ml_release.demo.generate import generate, write_demo_data
from ml_release.registry import Registry
from tests.conftest import PROJECT, RUNTIME_DIR, SMALL, demo_artifact, spec_dict, write_spec
from tests.servers import CeleryWorkers, redis_server

ML_RELEASE = Path(sys.executable).parent / "ml-release"
INSTANCE_YAML = PROJECT / "docs" / "examples" / "dagster-postgres.yaml"
MODEL = "credit_default"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres):
    """A scratch project whose instance and registry live on the session's PostgreSQL."""
    root = tmp_path_factory.mktemp("deployment")
    home, dagster_home = root / "home", root / "dagster"
    data = generate(seed=11, **SMALL)
    write_demo_data(home / "demo", data)
    dagster_home.mkdir()
    shutil.copy(INSTANCE_YAML, dagster_home / "dagster.yaml")
    instance_db = conninfo_to_dict(postgres.create_database("dagster"))
    pg_env = {
        "DAGSTER_PG_HOST": instance_db["host"],
        "DAGSTER_PG_PORT": instance_db["port"],
        "DAGSTER_PG_USER": instance_db["user"],
        "DAGSTER_PG_PASSWORD": instance_db["password"],
        "DAGSTER_PG_DB": instance_db["dbname"],
    }
    registry_url = postgres.create_schema("registry")
    env = {
        **os.environ,
        **pg_env,
        "ML_RELEASE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "ML_RELEASE_RUNTIME_DIR": str(RUNTIME_DIR),
        "ML_RELEASE_REGISTRY_URL": registry_url,
        "COLUMNS": "200",
    }

    def artifact(
        version: str, shuffle_seed: int | None = None, c: float = 1.0, name: str = MODEL
    ) -> Path:
        folder = root / "published"
        return demo_artifact(data, folder, name=name, version=version, c=c, shuffle=shuffle_seed)

    return SimpleNamespace(
        spec=write_spec(root, spec_dict()),
        home=home,
        dagster_home=dagster_home,
        env=env,
        pg_env=pg_env,
        registry_url=registry_url,
        password=postgres.password,
        artifact=artifact,
    )


def cli(deployment, *args: str, env: dict | None = None, spec=None) -> subprocess.Popen:
    """Start `ml-release --spec SPEC ARGS` as a user would."""
    return subprocess.Popen(
        [str(ML_RELEASE), "--spec", str(spec or deployment.spec), *args],
        cwd=PROJECT,
        env=env or deployment.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=900)
    return process.returncode, " ".join(output.split())  # the console wraps long lines


@pytest.fixture()
def instance(deployment, monkeypatch):
    """The deployment's Dagster instance, read from this process."""
    for name, value in deployment.pg_env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as found:
        yield found


def _release_runs(instance) -> list:
    return [r for r in instance.get_runs() if r.job_name == keys.RELEASE_JOB]


def test_the_documented_instance_file_is_the_one_in_the_docs():
    guide = (PROJECT / "docs" / "deployment.md").read_text()
    assert INSTANCE_YAML.read_text() in guide, "docs/deployment.md must quote the file as it is"


def test_releases_run_through_a_postgres_instance_and_registry(deployment, instance):
    code, out = finish(cli(deployment, "run"))
    assert code == 0 and "PROMOTED" in out, out
    blocked = deployment.artifact("shuffled", shuffle_seed=1)
    code, out = finish(cli(deployment, "run", "--candidate", str(blocked)))
    assert code == 1 and "BLOCKED" in out, out
    code, out = finish(cli(deployment, "status"))
    assert code == 0 and "registry: postgresql://postgres:***@127.0.0.1" in out, out
    assert deployment.password not in out

    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    runs = _release_runs(instance)
    assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]
    production = instance.fetch_materializations(dg.AssetKey(keys.PRODUCTION_MODEL), limit=5)
    assert len(production.records) == 1
    registry = Registry(deployment.registry_url)
    first = registry.alias(MODEL)
    assert production.records[0].asset_materialization.metadata["version"].value == first
    assert [e.version for e in registry.events(MODEL, ("blocked",))] == ["shuffled"]
    assert registry.problems(MODEL) == []
    assert not list(deployment.home.glob("registry.duckdb*"))  # nothing went to the file


def test_six_releases_of_three_models_at_once_on_postgres_and_celery(
    deployment, instance, tmp_path
):
    """One location gates three models (a folder of specs); a good and a bad candidate of each
    run at once, their steps on two Celery workers: each model judged on its own."""
    from tests.test_many_models import MODELS, write_specs

    specs = tmp_path / "specs"
    write_specs(specs)
    registry = Registry(deployment.registry_url)
    candidates = []
    for n, model in enumerate(MODELS):
        candidates.append(
            (model, "good", deployment.artifact(f"{model}-good", c=0.5 + n, name=model))
        )
        candidates.append(
            (model, "bad", deployment.artifact(f"{model}-bad", shuffle_seed=n, name=model))
        )
    with redis_server() as redis:
        workers = CeleryWorkers(redis.url, deployment.env, count=2, project=PROJECT)
        try:
            workers.start()
            env = {**deployment.env, keys.CELERY_BROKER_ENV: redis.url}
            launched = [
                cli(
                    deployment,
                    "--model",
                    model,
                    "run",
                    "--candidate",
                    str(folder),
                    env=env,
                    spec=specs,
                )
                for model, _kind, folder in candidates
            ]
            launchers = {p.pid for p in launched}
            results = [finish(p) for p in launched]
            worker_logs = [workers.log(n) for n in range(2)]
            worker_pids = workers.pids
        finally:
            workers.stop()

    for (model, kind, _folder), (code, out) in zip(candidates, results, strict=True):
        if kind == "good":
            assert code == 0 and f"PROMOTED {model}-good" in out, out
        else:
            assert code == 1 and "BLOCKED" in out, out  # never 3: no wait ran out
    assert any("execute_plan" in log and "succeeded" in log for log in worker_logs)
    for model in MODELS:
        assert registry.alias(model) == f"{model}-good"
        assert [e.version for e in registry.events(model, ("promoted",))] == [f"{model}-good"]
        assert [e.version for e in registry.events(model, ("blocked",))] == [f"{model}-bad"]
        assert registry.problems(model) == []
        assert (deployment.home / "warehouses" / f"{model}.duckdb").is_file()
        runs = [r for r in instance.get_runs() if r.job_name == f"{model}__release"]
        assert len(runs) == 2 and {r.tags[keys.MODEL_TAG] for r in runs} == {model}
        assert {r.tags[keys.PARTITION_TAG] for r in runs} == {
            registry.version(model, f"{model}-{kind}").digest for kind in ("good", "bad")
        }
        step_pids = {
            entry.dagster_event.pid
            for run in runs
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        }
        assert step_pids and step_pids <= worker_pids and not step_pids & launchers, (
            step_pids,
            worker_pids,
        )
        production = instance.fetch_materializations(
            dg.AssetKey([model, keys.PRODUCTION_MODEL]), limit=5
        )
        assert [r.asset_materialization.metadata["version"].value for r in production.records] == [
            f"{model}-good"
        ]


def test_runs_creating_a_new_pool_at_once_do_not_fail(deployment, instance):
    """Dagster creates a pool's limit in a transaction that fails on PostgreSQL when two runs
    create it at once; `prepare_pool` creates it first and tolerates losing that race."""
    import threading

    from ml_release.jobs import prepare_pool

    barrier, errors = threading.Barrier(4), []

    def create() -> None:
        with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as own:
            barrier.wait()
            try:
                prepare_pool(own, "race__warehouse")
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pools = instance.event_log_storage.get_pool_limits()
    assert [p.limit for p in pools if p.name == "race__warehouse"] == [1]
