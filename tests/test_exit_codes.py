"""One exit code per class of outcome, as docs/cli.md documents them; never a traceback.

Exit 1 means "blocked by a gate" to every CI system, so nothing else may use it. Each case
drives the real command line in a child process (faults injected there by the test), and
checks the code, the message and that no traceback reached the terminal.
"""

import pickle
import re
from dataclasses import replace

import pytest

from ml_release.demo import scenarios
from ml_release.demo.generate import write_demo_data
from tests.children import run_driver
from tests.conftest import PROJECT, cli_env, spec_dict, write_spec
from tests.test_artifacts import Trap, forge, write

DRIVER = """
import errno, sys
from ml_release import faults
from ml_release.cli import main
fault = sys.argv[1]
if fault == "disk_full":
    full = OSError(errno.ENOSPC, "No space left on device")
    faults.install(faults.RaiseAt("artifact:write", full))
elif fault == "bug":
    faults.install(faults.RaiseAt("artifact:write", RuntimeError("an unexpected state")))
elif fault == "interrupt":
    faults.install(faults.RaiseAt("artifact:write", KeyboardInterrupt()))
sys.exit(main(sys.argv[2:]))
"""

DOCUMENTED = {0, 1, 2, 3, 4, 5, 70, 130, 143}


def cli(env: dict, *args: str, fault: str = "") -> tuple[int, str]:
    return run_driver(DRIVER, [fault, *args], env=env, cwd=PROJECT)


@pytest.fixture()
def project(home, tmp_path, demo):
    write_demo_data(home / "demo", demo)
    spec = write_spec(tmp_path, spec_dict())
    env = cli_env(home)
    return spec, env, home, tmp_path


@pytest.fixture(scope="module")
def model():
    from ml_release.demo.features import CATEGORICAL, NUMERIC, REQUIRED_COLUMNS
    from ml_release.demo.generate import generate
    from ml_release.model import build_pipeline

    data = generate(seed=4, n_training=1500, n_evaluation=10, n_serving=10).training
    pipeline = build_pipeline(
        "ml_release.demo.features", NUMERIC, CATEGORICAL, "logistic_regression", {}
    )
    return pipeline.fit(data[list(REQUIRED_COLUMNS)], data["defaulted"])


def _clean(output: str) -> None:
    assert "Traceback" not in output, output


def test_the_documented_table_is_the_one_the_code_uses():
    text = (PROJECT / "docs" / "cli.md").read_text()
    table = text.split("## Exit codes (stable)", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+)(?: / \d+)? \|", table, re.M)}
    documented |= {int(c) for c in re.findall(r"^\| \d+ / (\d+) \|", table, re.M)}
    assert documented == DOCUMENTED


@pytest.mark.reliability("input")
@pytest.mark.slow
def test_every_class_has_its_code_and_no_traceback(project, model, demo):
    spec, env, home, tmp = project

    code, out = cli(env, "--spec", str(spec), "gates")
    assert code == 0

    bad = spec_dict()
    bad["gates"][0]["name"] = "feature_shema"
    (tmp / "bad").mkdir()
    code, out = cli(env, "--spec", str(write_spec(tmp / "bad", bad)), "validate")
    assert code == 2 and "Did you mean 'feature_schema'" in out
    _clean(out)

    published = tmp / "published"
    first = write(model, published, name="credit_default", version="v1")
    code, out = cli(env, "--spec", str(spec), "run", "--candidate", str(first))
    assert code == 0, out

    model.set_params(estimator__C=0.3)
    other = write(model, tmp / "other", name="credit_default", version="v1")
    model.set_params(estimator__C=1.0)
    code, out = cli(env, "--spec", str(spec), "register", str(other))
    assert code == 3 and "immutable" in out
    _clean(out)

    forged = write(model, tmp / "forged", name="credit_default", version="v9")
    disguised = forge(forged, pickle.dumps(Trap(tmp / "x")))
    code, out = cli(env, "--spec", str(spec), "run", "--candidate", str(disguised))
    assert code == 4 and "never loads pickles" in out
    _clean(out)

    skops_file = tmp / "m.skops"
    from ml_release.artifacts.skops_io import skops_bytes

    skops_file.write_bytes(skops_bytes(model))
    code, out = cli(env, "--spec", str(spec), "register", str(skops_file), fault="disk_full")
    assert code == 5 and "disk is full at" in out, out
    _clean(out)

    code, out = cli(env, "--spec", str(spec), "register", str(skops_file), fault="bug")
    assert code == 70 and "This is a bug in ml-release" in out, out
    _clean(out)
    [saved] = (home / "logs").glob("error-*.txt")
    assert "RuntimeError: an unexpected state" in saved.read_text()

    code, out = cli(env, "--spec", str(spec), "register", str(skops_file), fault="interrupt")
    assert code == 130 and "interrupted" in out
    _clean(out)

    code, out = cli(env, "--spec", str(spec), "rollback", "--to", "no-such-version")
    assert code == 2 and "has no version 'no-such-version'" in out
    _clean(out)

    broken = replace(demo, evaluation=scenarios.null_flood(demo.evaluation, "annual_income"))
    write_demo_data(home / "demo", broken)
    model.set_params(estimator__C=0.5)
    second = write(model, published, name="credit_default", version="v2")
    model.set_params(estimator__C=1.0)
    code, out = cli(env, "--spec", str(spec), "run", "--candidate", str(second))
    assert code == 1 and "BLOCKED" in out
    _clean(out)

    registry = home / "registry.duckdb"
    registry.write_bytes(b"not a database " * 100)
    code, out = cli(env, "--spec", str(spec), "rollback")
    assert code == 4 and "cannot be opened as a DuckDB database" in out
    assert "snapshot.json" in out
    _clean(out)
