"""Project rules: imports go one way, and the wheel holds only `ml_release`."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT

GLUE = {"definitions.py", "keys.py", "sensors.py", "jobs.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_does_not_import_dagster_or_the_dagster_layers():
    for path in (PROJECT / "ml_release").rglob("*.py"):
        imported = _imports(path)
        assert not imported & {"assets", "checks", "resources"} or path.name == "definitions.py", (
            path
        )
        if path.name not in GLUE:
            assert "dagster" not in imported, path


def test_dagster_layers_import_ml_release_only():
    for layer in ("assets", "checks", "resources"):
        others = {"assets", "checks", "resources"} - {layer}
        for path in (PROJECT / layer).rglob("*.py"):
            assert not _imports(path) & others, path


def test_no_future_annotations_where_dagster_objects_are_defined():
    for layer in ("assets", "checks", "resources"):
        for path in (PROJECT / layer).rglob("*.py"):
            assert "from __future__ import annotations" not in path.read_text(), path


@pytest.mark.slow
def test_wheel_contains_only_ml_release(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(PROJECT),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("ml_release-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"ml_release", f"{wheel.name.split('-py')[0]}.dist-info"}
    assert "ml_release/demo/features.py" in zipfile.ZipFile(wheel).namelist()
