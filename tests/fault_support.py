"""Running a piece of ml-release in a child process that dies at a named step.

The crash is injected by the test (`ml_release.faults.install(CrashAt(step))` in the child),
never read from the environment by production code.
"""

from ml_release.faults import CRASH_EXIT_CODE
from tests.children import run_driver

DRIVER = """
import sys
from ml_release.faults import CrashAt, install
if sys.argv[1]:
    install(CrashAt(sys.argv[1]))
exec(sys.argv[2], {"argv": sys.argv[3:]})
"""


def run_crashing(step: str, code: str, *args: str, timeout: float = 120) -> int:
    """Run `code` (it sees `argv`) in a child that exits at `step`; its exit code."""
    returncode, output = run_driver(DRIVER, [step, code, *map(str, args)], timeout=timeout)
    if returncode not in (0, CRASH_EXIT_CODE):
        raise AssertionError(f"child failed ({returncode}):\n{output[-3000:]}")
    return returncode


__all__ = ["CRASH_EXIT_CODE", "run_crashing"]
