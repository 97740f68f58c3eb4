"""The installed package, not the checkout: a non-editable wheel without extras runs a release.

`pip install ml-release` puts only `ml_release` in site-packages; the project's Dagster
definitions (`assets/`, `checks/`, `resources/`) stay in the project folder, which the
project's own install or `PYTHONPATH` puts on the import path (nothing patches `sys.path`).
The base install has no extra: the LLM, boosting, PostgreSQL and Celery libraries must not be
needed by a tabular release, so the child process refuses to import them.
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow  # builds a wheel and a virtualenv: not in `make check`

# Top-level modules of the extras (pyproject.toml): importing one fails in the child process.
LLM_EXTRA = ("jsonschema", "ragas", "rapidfuzz", "rouge_score", "sacrebleu", "langchain_community")
EXTRAS_MODULES = (
    *LLM_EXTRA,
    "absl",
    "xgboost",
    "lightgbm",
    "psycopg",
    "dagster_postgres",
    "dagster_celery",
    "celery",
)

# sitecustomize of the scratch environment: the base install has none of the extras.
NO_EXTRAS = f"""
import importlib.abc, sys

class _NoExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the base install)")
        return None

sys.meta_path.insert(0, _NoExtras())
"""


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built without network (the installed hatchling)."""
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, PROJECT],
        check=True,
    )
    return next(wheels.glob("ml_release-*.whl"))


def test_the_wheel_contains_only_ml_release(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"ml_release", f"{wheel.name.split('-py')[0]}.dist-info"}
    assert "ml_release/demo/features.py" in names


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A virtualenv with the ml-release wheel installed (not editable) and no extras.

    Its dependencies are the project environment's (a `.pth` line), so nothing is downloaded;
    the project environment's editable hook is not processed there, so `ml_release` can only
    come from the wheel.
    """
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = _bin(venv, "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], check=True
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "sitecustomize.py").write_text(NO_EXTRAS)
    return venv


def test_the_package_comes_from_the_wheel_and_the_extras_are_absent(installed, tmp_path):
    probe = (
        "import ml_release, importlib.util as u; print(ml_release.__file__); "
        "print(u.find_spec('assets'));\n"
        "try:\n    import jsonschema\nexcept ModuleNotFoundError as e:\n    print('refused', e)"
    )
    out = subprocess.run(
        [_bin(installed, "python"), "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert str(installed) in out[0] and str(PROJECT) not in out[0]
    assert out[1] == "None"  # the project's definitions are not in the wheel
    assert out[2].startswith("refused")


def test_a_non_editable_install_without_extras_runs_a_tabular_release(
    installed, make_release, home, tmp_path
):
    spec = make_release()
    command = [_bin(installed, "ml-release"), "--spec", str(spec.source), "run"]
    # Nothing patches the import path: without the project folder on it, a clear error.
    alone = subprocess.run(
        command, cwd=PROJECT, env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True
    )
    assert alone.returncode == 2, alone.stdout[-3000:] + alone.stderr[-3000:]
    assert "PYTHONPATH=PROJECT_FOLDER" in alone.stdout + alone.stderr
    assert "Traceback" not in alone.stdout + alone.stderr
    # The documented setting: the project folder (assets/, checks/, resources/) on PYTHONPATH,
    # from any working directory.
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "PROMOTED" in completed.stdout
