"""Project rules: imports go one way, and the wheel holds only `ml_release`."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

# The Dagster glue (DESIGN.md section 2): the only modules of ml_release that import dagster,
# four single files. `cli` and the demo tour drive Dagster runs through them (lazily, inside
# commands), so they may import the glue, never dagster itself.
GLUE_FILES = {"definitions.py", "keys.py", "sensors.py", "jobs.py"}
GLUE_CALLERS = {"cli", "demo/tour.py"}
GLUE_MODULES = {name.removesuffix(".py") for name in GLUE_FILES}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_glue(path: Path) -> bool:
    """A glue file, or a caller of the glue (the CLI package, the demo tour)."""
    relative = path.relative_to(PROJECT / "ml_release").as_posix()
    return relative in GLUE_FILES | GLUE_CALLERS or relative.split("/")[0] in GLUE_CALLERS


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
        assert not {n for n in imported for g in glue if n == g or n.startswith(g + ".")}, path
    for path in (PROJECT / "ml_release").rglob("*.py"):
        if path.name != "definitions.py":
            assert not _imports(path) & {"assets", "checks", "resources"}, path


def test_only_the_four_glue_files_import_dagster():
    importing = {
        path.relative_to(PROJECT / "ml_release").as_posix()
        for path in (PROJECT / "ml_release").rglob("*.py")
        if "dagster" in {name.split(".")[0] for name in _full_imports(path)}
    }
    assert importing <= GLUE_FILES, importing - GLUE_FILES
    assert not (PROJECT / "ml_release" / "jobs").exists()  # one module, not a package


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


# -- structure: no import cycle, small modules and functions ---------------------------------
LAYERS = ("ml_release", "assets", "checks", "resources")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
# Known debt (docs/decisions.md): each may shrink, never grow; the test says when one can go.
OVERSIZE_MODULES: dict[str, int] = {}
OVERSIZE_FUNCTIONS: dict[str, int] = {}


def _project_modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((PROJECT / layer).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _module_level_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Project modules `path` imports when it is imported (not inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for statement in ast.parse(path.read_text()).body:
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            continue
        for node in ast.walk(statement) if isinstance(statement, ast.If | ast.Try) else [statement]:
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
    return {module for module in found if module in modules and module != name}


def test_no_import_cycle_among_project_modules():
    import graphlib

    modules = _project_modules()
    graph = {name: _module_level_imports(path, name, modules) for name, path in modules.items()}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def _table(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A declarative table: the body (after its docstring) returns one literal list or dict."""
    body = [s for s in function.body if not isinstance(s, ast.Expr)]
    return (
        len(body) == 1
        and isinstance(body[0], ast.Return)
        and isinstance(body[0].value, ast.List | ast.Dict | ast.Tuple)
    )


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules, functions = {}, {}
    for path in _project_modules().values():
        relative = path.relative_to(PROJECT).as_posix()
        text = path.read_text()
        modules[relative] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _table(node):
                functions[f"{relative}:{node.name}"] = node.end_lineno - node.lineno + 1
    return modules, functions


@pytest.mark.parametrize("kind", ["module", "function"])
def test_modules_and_functions_stay_small(kind):
    modules, functions = _sizes()
    sizes, limit, debt = (
        (modules, MAX_MODULE_LINES, OVERSIZE_MODULES)
        if kind == "module"
        else (functions, MAX_FUNCTION_LINES, OVERSIZE_FUNCTIONS)
    )
    too_big = {name: n for name, n in sizes.items() if n > debt.get(name, limit)}
    assert not too_big, f"over {limit} lines (split them): {too_big}"
    paid = [name for name, n in debt.items() if sizes.get(name, 0) <= limit]
    assert not paid, f"within the limit now: remove them from the known debt: {paid}"


def test_the_makefile_python_snippets_run(tmp_path):
    """`make ui` prepares the instance with inline Python: a renamed module must fail here."""
    import re

    snippets = re.findall(r"\$\(BIN\)/python -c '([^']+)'", (PROJECT / "Makefile").read_text())
    assert len(snippets) >= 2, snippets
    env = {**os.environ, "ML_RELEASE_HOME": str(tmp_path / "home")}
    for code in snippets:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{code}\n{done.stderr}"
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()


def test_the_serving_runtime_builds_before_the_project_is_installed(tmp_path):
    """`make install` builds the runtime beside the project's pip: nothing third-party imported.

    `python -S` leaves out site-packages; the builder's root is pointed at a folder holding a
    finished runtime, so the import path and the lookup run without building anything.
    """
    from ml_release.serving.environment import RUNTIME_DIR_ENV, runtime_key

    ready = tmp_path / runtime_key()
    (ready / "bin").mkdir(parents=True)
    (ready / ".complete").write_text("")
    env = {**os.environ, RUNTIME_DIR_ENV: str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-S", "-m", "ml_release.serving.environment"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"serving runtime: {ready / 'bin' / 'python'}"


def test_make_check_leaves_out_the_tests_on_the_postgres_server():
    """The `server` marker (tests/conftest.py) takes out the PostgreSQL cases, not their twins."""
    files = ["tests/test_registry.py", "tests/test_intake.py"]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not server", *files],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert not [i for i in ids if "postgres" in i], ids
    assert any("[duckdb" in i for i in ids), ids
