"""Crash points for fault-injection tests: a process dies at a named step, nothing else.

Active only when `ML_RELEASE_CRASH_AT` names the step; tests use it to kill a promotion or a
rollback at each step and check that the registry is consistent after a restart.
"""

import os

CRASH_ENV = "ML_RELEASE_CRASH_AT"
CRASH_EXIT_CODE = 86


def crash_point(name: str) -> None:
    """Exit the process immediately (no cleanup, no commit) if the test asked to die here."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_CODE)


KILL_CANDIDATE_ENV = "ML_RELEASE_KILL_CANDIDATE_AT"


def candidate_crash_due(step: float) -> bool:
    """True when `ML_RELEASE_KILL_CANDIDATE_AT` names this canary step (a percent).

    The canary then kills the candidate's server before sending the step's traffic, as a
    crashed pod would die: the demo and the tests use it to show the abort path.
    """
    value = os.environ.get(KILL_CANDIDATE_ENV)
    return value is not None and float(value) == float(step)
