"""The registry: idempotent registration, compare-and-set promotion, crash safety, races.

Every test runs on both backends (`registry` and `registry_location` in conftest.py): the
embedded DuckDB file and a PostgreSQL database on a server the session starts.
"""

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ml_release.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseLockedError,
    NotFoundError,
    ServiceUnavailableError,
)
from ml_release.registry import (
    PRODUCTION,
    REGISTRY_URL_ENV,
    Registry,
    open_for_reading,
    open_reader,
    open_registry,
)
from ml_release.registry.snapshot import SnapshotRegistry
from tests.fault_support import CRASH_EXIT_CODE, run_crashing
from tests.servers import free_port

MODEL = "credit_default"


def _register(registry, version, digest=None):
    digest = digest or (version * 64)[:64]
    return registry.register(MODEL, version, digest, f"/store/{version}", {"version": version})


def test_registering_the_same_artifact_twice_is_idempotent(registry):
    first, created = _register(registry, "v1", "a" * 64)
    again, created_again = _register(registry, "v1", "a" * 64)
    assert created and not created_again
    assert again == first
    assert [e.event for e in registry.events(MODEL)] == ["registered"]


def test_same_digest_under_a_new_label_returns_the_existing_version(registry):
    _register(registry, "v1", "a" * 64)
    existing, created = _register(registry, "v1-copy", "a" * 64)
    assert existing.version == "v1" and not created


def test_same_version_with_another_digest_is_a_conflict(registry):
    _register(registry, "v1", "a" * 64)
    with pytest.raises(ConflictError, match="already registered with digest aaaaaaaaaaaa"):
        _register(registry, "v1", "b" * 64)
    assert len(registry.versions(MODEL)) == 1


def test_promotion_moves_production_with_one_event(registry):
    _register(registry, "v1")
    _register(registry, "v2")
    registry.move_production(
        MODEL,
        "v1",
        expected=None,
        event="promoted",
        step="promote",
        reason="first release, no baseline",
    )
    event = registry.move_production(
        MODEL, "v2", expected="v1", event="promoted", step="promote", reason="better"
    )
    assert registry.alias(MODEL, PRODUCTION) == "v2"
    assert (event.version, event.from_version, event.reason) == ("v2", "v1", "better")
    assert registry.problems(MODEL) == []


def test_a_stale_expectation_loses_and_changes_nothing(registry):
    _register(registry, "v1")
    _register(registry, "v2")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    with pytest.raises(ConflictError, match="another promotion or rollback won"):
        registry.move_production(MODEL, "v2", expected=None, event="promoted", step="promote")
    assert registry.alias(MODEL, PRODUCTION) == "v1"
    assert len(registry.events(MODEL, ("promoted",))) == 1


def test_retrying_a_done_promotion_records_nothing(registry):
    _register(registry, "v1")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    again = registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    assert again is None
    assert len(registry.events(MODEL, ("promoted",))) == 1


def test_unknown_version_is_not_found(registry):
    with pytest.raises(NotFoundError, match="no registered version 'v9'"):
        registry.move_production(MODEL, "v9", expected=None, event="promoted", step="promote")


OPENS = "import sys, duckdb; duckdb.connect(sys.argv[1]).close()"


def test_a_held_registry_reads_and_writes_as_usual_and_lets_go_after_the_block(
    registry, registry_location
):
    """A release step holds the registry for its several reads and its promotion: they see
    each other, commit as usual, and the DuckDB file is busy for the block only."""

    def another_process_opens() -> bool:
        opened = subprocess.run([sys.executable, "-c", OPENS, str(registry_location)])
        return opened.returncode == 0

    _register(registry, "v1")
    with registry.held() as held:
        assert held is registry
        _register(registry, "v2")
        registry.move_production(MODEL, "v2", expected=None, event="promoted", step="promote")
        assert registry.alias(MODEL, PRODUCTION) == "v2"
        assert [v.version for v in registry.versions(MODEL)] == ["v1", "v2"]
        if isinstance(registry_location, Path):
            assert not another_process_opens()  # one open of the file for the whole block
    assert Registry(registry_location).alias(MODEL, PRODUCTION) == "v2"  # committed
    if isinstance(registry_location, Path):
        assert another_process_opens()


PROMOTE = """
import sys
from ml_release.errors import ConflictError
from ml_release.registry import Registry
registry = Registry(sys.argv[1], lock_timeout=60)
try:
    registry.move_production("credit_default", sys.argv[2], expected=sys.argv[3] or None,
                             event="promoted", step="promote")
    print("won")
except ConflictError:
    print("lost")
"""


def _promote_process(path, version, expected=""):
    return subprocess.Popen(
        [sys.executable, "-c", PROMOTE, str(path), version, expected],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.reliability("fault")
def test_concurrent_promotions_have_exactly_one_winner(registry, registry_location):
    for i in range(6):
        _register(registry, f"v{i}")
    processes = [_promote_process(registry_location, f"v{i}") for i in range(6)]
    results = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert sorted(results) == ["lost"] * 5 + ["won"], results
    promoted = registry.events(MODEL, ("promoted",))
    assert len(promoted) == 1
    assert registry.alias(MODEL, PRODUCTION) == promoted[0].version
    assert registry.problems(MODEL) == []


PROMOTE_CODE = """
from ml_release.registry import Registry
Registry(argv[0]).move_production("credit_default", "v2", expected="v1", event="promoted",
                                  step="promote")
"""


@pytest.mark.parametrize(
    "step",
    [
        "promote:before_alias",
        "promote:after_alias",
        "promote:before_commit",
        "promote:after_commit",
    ],
)
@pytest.mark.reliability("fault")
def test_a_promotion_killed_at_any_step_leaves_a_consistent_registry(
    registry, registry_location, step
):
    _register(registry, "v1")
    _register(registry, "v2")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    assert run_crashing(step, PROMOTE_CODE, registry_location) == CRASH_EXIT_CODE
    reopened = Registry(registry_location)
    assert reopened.problems(MODEL) == []
    production = reopened.alias(MODEL, PRODUCTION)
    assert production == ("v2" if step == "promote:after_commit" else "v1")
    # Retrying finishes the job or says it is done, never a second event.
    assert run_crashing("", PROMOTE_CODE, registry_location) == 0
    assert reopened.alias(MODEL, PRODUCTION) == "v2"
    assert [e.version for e in reopened.events(MODEL, ("promoted",))] == ["v1", "v2"]


def test_readers_get_the_snapshot_while_another_process_holds_the_file(registry):
    if registry.path is None:
        pytest.skip("a server registry has no file to hold: readers never wait (test below)")
    _register(registry, "v1")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    digest = registry.version(MODEL, "v1").digest
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(registry.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        reader = open_for_reading(registry.path)
        assert isinstance(reader, SnapshotRegistry)
        assert reader.alias(MODEL) == "v1"
        assert [e.event for e in reader.events(MODEL)] == ["registered", "promoted"]
        assert reader.version(MODEL, "v1").digest == digest
    finally:
        holder.kill()
        holder.wait()
    assert not isinstance(open_for_reading(registry.path), SnapshotRegistry)


def test_the_production_alias_names_no_previous_alias(registry):
    # `previous` is read from the ledger (timeline), never stored: a rollback cannot rewrite it.
    _register(registry, "v1")
    _register(registry, "v2")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    registry.move_production(MODEL, "v2", expected="v1", event="promoted", step="promote")
    assert registry.alias(MODEL, "previous") is None


RECORD = """
import sys
from ml_release.registry import Registry
registry = Registry(sys.argv[1], lock_timeout=120)
for i in range(int(sys.argv[3])):
    registry.record("credit_default", "gated", version=sys.argv[2], reason=f"write {i}")
"""


@pytest.mark.reliability("fault")
def test_concurrent_writers_keep_the_ledger_gap_free(registry, registry_location):
    _register(registry, "v1")
    writers, each = 3, 8
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD, str(registry_location), f"w{n}", str(each)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    events = registry.events(MODEL)
    assert [e.seq for e in events] == list(range(1, 2 + writers * each))
    for n in range(writers):  # each writer's events in its own order, none lost
        mine = [e.reason for e in events if e.version == f"w{n}"]
        assert mine == [f"write {i}" for i in range(each)]
    assert registry.problems(MODEL) == []


@pytest.mark.reliability("fault")
def test_readers_never_wait_for_a_writer_and_writers_wait_bounded(registry, registry_location):
    if registry.path is not None:
        pytest.skip("the DuckDB file has one process at a time: readers use its snapshot (above)")
    _register(registry, "v1")
    _register(registry, "v2")
    registry.move_production(MODEL, "v1", expected=None, event="promoted", step="promote")
    with registry.backend.write() as held:  # a writer in the middle of its transaction
        held.execute(
            "UPDATE aliases SET version = ? WHERE model = ? AND alias = ?",
            ["v2", MODEL, PRODUCTION],
        )
        started = time.monotonic()
        reader = open_reader(registry_location)
        assert reader.alias(MODEL) == "v1"  # the committed state, at once
        assert len(reader.state(MODEL).events(MODEL)) == 3
        read_seconds = time.monotonic() - started
        impatient = Registry(registry_location, lock_timeout=1)
        with pytest.raises(DatabaseLockedError, match="stayed locked by another writer") as caught:
            impatient.record(MODEL, "gated", version="v2")
        held.execute("ROLLBACK")
        held.execute("BEGIN")
    assert read_seconds < impatient.backend.lock_timeout  # the reader did not queue behind it
    assert ":***@" in str(caught.value) and "pw-" not in str(caught.value)
    assert registry.alias(MODEL) == "v1" and registry.problems(MODEL) == []


def test_the_configured_registry_is_chosen_in_one_place(tmp_path, monkeypatch, postgres):
    from resources import ModelRegistryResource

    file = tmp_path / "registry.duckdb"
    monkeypatch.delenv(REGISTRY_URL_ENV, raising=False)
    assert open_registry(path=file).path == file  # the embedded default
    assert ModelRegistryResource(path=str(file)).get().path == file
    url = postgres.create_schema("chosen")
    monkeypatch.setenv(REGISTRY_URL_ENV, url)
    chosen = open_registry(path=file)
    assert chosen.path is None and chosen.where == url.replace(postgres.password, "***")
    assert ModelRegistryResource(path=str(file)).get().where == chosen.where
    assert isinstance(open_reader(path=file), Registry)  # live: a server registry never waits
    other = postgres.create_schema("setting")  # the resource's own setting wins
    assert ModelRegistryResource(path=str(file), url=other).get().where.endswith(other[-20:])


def test_a_bad_registry_setting_is_refused_without_its_password(monkeypatch, postgres):
    monkeypatch.setenv(REGISTRY_URL_ENV, "mysql://admin:hunter2@db:3306/registry")
    with pytest.raises(ConfigurationError, match=REGISTRY_URL_ENV) as caught:
        open_registry()
    assert "hunter2" not in str(caught.value) and "postgresql://" in str(caught.value)
    unreachable = postgres.url("nowhere").replace(str(postgres.port), str(free_port()))
    monkeypatch.setenv(REGISTRY_URL_ENV, unreachable)
    with pytest.raises(ServiceUnavailableError, match="cannot be reached") as caught:
        open_registry()
    assert postgres.password not in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert caught.value.exit_code == 5


def test_a_registry_file_replaced_in_the_same_process_gets_its_tables(tmp_path):
    # Registry() skips its schema check for a file this process already saw holding the schema
    # and unchanged since; a file replaced since (here by an empty database) is checked again.
    path = tmp_path / "registry.duckdb"
    _register(Registry(path), "v1")
    assert [v.version for v in Registry(path).versions(MODEL)] == ["v1"]  # seen with the schema
    path.unlink()
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    duckdb.connect(str(path)).close()
    replaced = Registry(path)
    assert replaced.versions(MODEL) == []
    _register(replaced, "v1")
    assert [v.version for v in Registry(path).versions(MODEL)] == ["v1"]
