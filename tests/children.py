"""Child processes for the fault tests, forked from a server that has the libraries imported.

A fault test runs a piece of ml-release in a child process that dies at a named step (the fault
calls `os._exit`, leaving what a kill leaves), then a second child that retries. A child started
as a new interpreter spends seconds importing Dagster, scikit-learn, skops, SciPy, pandas and
DuckDB before its first line of work (about 4 s of a 10 s release on 2 cores). These children
are forked from multiprocessing's fork server, which imported those third-party libraries once
per test process (`LIBRARIES`); each child then sets its environment and working directory and
runs its driver code, which imports ml-release's own modules as a new process would. A child is
still a process of its own: it dies at the fault without running any cleanup of its parent.
"""

import multiprocessing
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

# Imported by the fork server: libraries only (and the module that orders their imports), none
# of which reads the variables a test sets for its child (ML_RELEASE_*, DAGSTER_HOME, COLUMNS)
# when imported; ml-release's modules are imported by each child after its environment is in
# place.
LIBRARIES = [
    "ml_release.skops_order",  # first: it halves skops' import (its docstring says why)
    "dagster",
    "duckdb",
    "matplotlib.pyplot",
    "pandas",
    "pandera.pandas",
    "pyarrow.parquet",
    "scipy.stats",
    "skops.io",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(LIBRARIES)


def _child(driver: str, argv: list[str], env: Mapping[str, str], cwd: str, output: str) -> None:
    # The fork server is one per test process: had a Dagster run in this process started it
    # with ml-release's definitions preloaded, the child would not start as a new process does.
    ours = {"ml_release", "ml_release.skops_order"}  # the package and the import order
    loaded = sorted(
        m for m in sys.modules if m.split(".")[0] in ("ml_release", "assets") and m not in ours
    )
    if loaded:
        raise RuntimeError(f"the fork server had ml-release's modules imported: {loaded[:5]}")
    fd = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["-c", *argv]
    exec(compile(driver, "<string>", "exec"), {"__name__": "__main__"})


def run_driver(
    driver: str,
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 600,
) -> tuple[int, str]:
    """Run `driver` as `python -c driver *argv` would, in a forked child; (exit code, output).

    The output is stdout and stderr together. A child still running after `timeout` seconds is
    killed, and the test fails with what it wrote.
    """
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as output:
        child = _context.Process(
            target=_child,
            args=(
                driver,
                list(argv),
                dict(env or os.environ),
                str(cwd or os.getcwd()),
                output.name,
            ),
        )
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise AssertionError(
                f"the child was still running after {timeout:.0f} s and was killed:\n"
                + Path(output.name).read_text()[-3000:]
            )
        return child.exitcode, Path(output.name).read_text()
