"""Release integrity through the command line only, as a user (and an attacker) would.

On a scratch project with the demo data: a first model is promoted, a second blocked;
`rollback --to` the blocked one is refused and changes nothing byte for byte; a third is
promoted; `rollback` twice restores the first once; a disguised pickle is refused at the
door; two releases run at once through the Dagster instance, each judged on its own rows,
and only the good one is promoted.
"""

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_release.artifacts.writer import write_artifact
from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
from ml_release.demo.generate import generate, write_demo_data
from ml_release.model import build_pipeline
from ml_release.registry import Registry
from tests.conftest import PROJECT, SMALL, cli_env, spec_dict, write_spec
from tests.test_artifacts import Trap, forge

ML_RELEASE = Path(sys.executable).parent / "ml-release"
MODEL = "credit_default"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A scratch spec and home with small demo data; artifacts published outside the home."""
    root = tmp_path_factory.mktemp("project")
    home = root / "home"
    data = generate(seed=11, **SMALL)
    write_demo_data(home / "demo", data)
    spec = write_spec(root, spec_dict())
    published = root / "published"

    def artifact(version: str, shuffle_seed: int | None = None, c: float = 1.0) -> Path:
        rows = data.training
        labels = rows["defaulted"].to_numpy()
        if shuffle_seed is not None:  # labels shuffled: a model that learned nothing
            labels = np.random.default_rng(shuffle_seed).permutation(labels)
        pipeline = build_pipeline(
            "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {"C": c}
        )
        model = pipeline.fit(rows[list(REQUIRED_COLUMNS)], labels)
        return write_artifact(
            model, published, name=MODEL, version=version, features=REQUIRED_COLUMNS
        )

    env = cli_env(home)
    return spec, home, env, artifact


def cli(project, *args: str, wait: bool = True):
    spec, _, env, _ = project
    command = [str(ML_RELEASE), "--spec", str(spec), *args]
    process = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    return process.returncode, " ".join(output.split())  # the console wraps long lines


def state(home: Path) -> dict[str, str]:
    """sha256 of every file of the registry and the artifact store."""
    files = [*home.glob("registry.duckdb*"), *sorted((home / "artifacts").rglob("*"))]
    return {
        str(f.relative_to(home)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in files
        if f.is_file()
    }


def registry(home: Path) -> Registry:
    return Registry(home / "registry.duckdb")


def test_integrity_end_to_end(project):
    _spec, home, _env, artifact = project
    code, out = cli(project, "run")
    assert code == 0 and "PROMOTED" in out, out
    first = registry(home).alias(MODEL)

    blocked = artifact("shuffled", shuffle_seed=1)
    code, out = cli(project, "run", "--candidate", str(blocked))
    assert code == 1 and "BLOCKED" in out, out

    before = state(home)
    code, out = cli(project, "rollback", "--to", "shuffled")
    assert code == 2, out
    assert "shuffled was blocked by its gates" in out and "No other version is known-good" in out
    assert state(home) == before  # nothing changed, byte for byte

    code, out = cli(project, "run", "--candidate", str(artifact("third", c=0.5)))
    assert code == 0 and "PROMOTED third" in out, out
    code, out = cli(project, "rollback", "--to", "shuffled")
    assert code == 2 and f"Next known-good version: {first}" in out, out

    code, out = cli(project, "rollback", "--reason", "incident")
    assert code == 0 and f"third -> {first}" in out, out
    code, out = cli(project, "rollback", "--reason", "incident")  # the runbook's safe retry
    assert code == 0 and "nothing to do" in out, out
    ledger = registry(home)
    assert ledger.alias(MODEL) == first
    assert len(ledger.events(MODEL, ("rolled_back",))) == 1

    disguised = forge(artifact("disguised", c=2.0), pickle.dumps(Trap(home / "pwned")))
    store = {k: v for k, v in state(home).items() if k.startswith("artifacts")}
    code, out = cli(project, "register", str(disguised))
    assert code == 4 and "never loads pickles" in out, out
    assert not (home / "pwned").exists()
    assert {k: v for k, v in state(home).items() if k.startswith("artifacts")} == store
    assert not (home / "incoming").exists() or not any((home / "incoming").iterdir())
    [refused] = registry(home).events(MODEL, ("refused",))
    assert refused.lineage["quarantined"].startswith("quarantine/")
    assert (home / refused.lineage["quarantined"] / "REASON.txt").is_file()

    code, out = cli(project, "status")
    assert code == 0 and f"production {first}" in out and str(home) in out, out
    code, out = cli(project, "history")
    assert code == 0 and "refused" in out and "rolled_back" in out, out


@pytest.mark.reliability("fault")
def test_two_releases_at_once_each_judge_their_own_candidate(project):
    _spec, home, _env, artifact = project
    good, bad = artifact("good-concurrent", c=0.25), artifact("bad-concurrent", shuffle_seed=2)
    digests = {
        name: json.loads((folder / "manifest.json").read_text())["sha256"]
        for name, folder in (("good", good), ("bad", bad))
    }
    baseline = registry(home).alias(MODEL)
    runs = {
        name: cli(project, "run", "--candidate", str(folder), wait=False)
        for name, folder in (("good", good), ("bad", bad))
    }
    results = {name: p.communicate(timeout=900) for name, p in runs.items()}
    codes = {name: p.returncode for name, p in runs.items()}
    assert codes == {"good": 0, "bad": 1}, results
    ledger = registry(home)
    assert ledger.alias(MODEL) == "good-concurrent"
    promoted = ledger.events(MODEL, ("promoted",))[-1]
    assert promoted.digest == digests["good"] and promoted.from_version == baseline
    blocked = [e for e in ledger.events(MODEL, ("blocked",)) if e.version == "bad-concurrent"]
    assert [e.digest for e in blocked] == [digests["bad"]]
    assert all(e.version != "bad-concurrent" for e in ledger.events(MODEL, ("promoted",)))
    assert ledger.problems(MODEL) == []
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        tables = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
    for digest in digests.values():  # each candidate scored into tables of its own
        assert f"candidate_predictions__{digest[:24]}" in tables
        assert f"baseline_predictions__{digest[:24]}" in tables
