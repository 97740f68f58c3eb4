"""Project rules: imports go one way, and the wheel holds only `ml_release`."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT

# The Dagster glue: the only modules of ml_release that may import dagster. `cli` and the demo
# tour drive Dagster runs, so they are glue too (they import it lazily, inside commands).
GLUE_MODULES = {"definitions", "keys", "sensors", "jobs", "instance", "waiting"}
GLUE_PACKAGES = {"cli"}
GLUE_FILES = {"demo/tour.py"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_glue(path: Path) -> bool:
    relative = path.relative_to(PROJECT / "ml_release")
    return (
        relative.with_suffix("").as_posix() in GLUE_MODULES
        or relative.parts[0] in GLUE_PACKAGES
        or relative.as_posix() in GLUE_FILES
    )


def _core_modules() -> list[Path]:
    return [p for p in sorted((PROJECT / "ml_release").rglob("*.py")) if not _is_glue(p)]


def _full_imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (top level or inside a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_neither_dagster_nor_the_glue_not_even_lazily():
    # keys.py is plain strings shared by every layer (no Dagster import): not forbidden.
    glue = {f"ml_release.{m}" for m in GLUE_MODULES - {"keys"}} | {"ml_release.cli"}
    for path in _core_modules():
        imported = _full_imports(path)
        assert not {n.split(".")[0] for n in imported} & {
            "dagster",
            "assets",
            "checks",
            "resources",
        }, path
        assert not {n for n in imported if n in glue or n.startswith("ml_release.cli.")}, path
    for path in (PROJECT / "ml_release").rglob("*.py"):
        if path.name != "definitions.py":
            assert not _imports(path) & {"assets", "checks", "resources"}, path


@pytest.mark.slow
def test_importing_any_core_module_loads_no_dagster():
    # These run inside the serving runtime's own environment (MLServer is installed there).
    runtime_only = {"ml_release.serving.launch", "ml_release.serving.runtime"}
    names = [_module_name(p) for p in _core_modules() if _module_name(p) not in runtime_only]
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "    if 'dagster' in sys.modules:\n"
        "        bad.append(name); break\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=PROJECT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


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
