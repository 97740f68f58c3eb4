"""Fault points: named steps where a test can inject a fault (a crash, a killed server).

Production code calls `fault_point(name, **context)` at the steps the reliability suite targets
(each step of a promotion, an override and a rollback; each canary step). It does nothing unless
a test installed a hook in this process with `install(hook)`; nothing is read from the
environment, so no setting can make a deployed process crash on purpose. Tests that kill a
process at a step run a small driver that installs `CrashAt(step)` and then calls the command.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

CRASH_EXIT_CODE = 86

FaultHook = Callable[..., None]
_hooks: list[FaultHook] = []


def fault_point(name: str, **context: Any) -> None:
    """Give every installed hook the chance to inject a fault at step `name`."""
    for hook in tuple(_hooks):
        hook(name, **context)


@contextmanager
def installed(hook: FaultHook) -> Iterator[FaultHook]:
    """Install `hook` for the duration of the block."""
    _hooks.append(hook)
    try:
        yield hook
    finally:
        _hooks.remove(hook)


def install(hook: FaultHook) -> None:
    """Install `hook` for the rest of this process (test drivers that are about to crash)."""
    _hooks.append(hook)


class CrashAt:
    """Exit the process at once (no clean-up, no commit) when step `step` is reached."""

    def __init__(self, step: str) -> None:
        self.step = step

    def __call__(self, name: str, **_: Any) -> None:
        """Exit when `name` is the step."""
        if name == self.step:
            os._exit(CRASH_EXIT_CODE)


class Recorder:
    """Remember every step reached, in order (tests check which steps a command passes)."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def __call__(self, name: str, **_: Any) -> None:
        """Remember `name`."""
        self.steps.append(name)


class KillCandidateAt:
    """Kill the candidate's model server before the canary step of `percent` % (a dead pod)."""

    def __init__(self, percent: float) -> None:
        self.percent = float(percent)

    def __call__(self, name: str, **context: Any) -> None:
        """Kill the candidate server before the chosen step."""
        if name == "canary:before_step" and float(context["step"]) == self.percent:
            context["log"](f"fault injected: the candidate server is killed at {self.percent:g} %")
            context["candidate_server"].process.kill()


class RaiseAt:
    """Raise `error` when step `step` is reached (a full disk, an unexpected bug)."""

    def __init__(self, step: str, error: BaseException) -> None:
        self.step, self.error = step, error

    def __call__(self, name: str, **context: Any) -> None:
        """Raise at the step; an OSError gets the step's path as its filename."""
        if name != self.step:
            return
        if isinstance(self.error, OSError) and "path" in context:
            raise type(self.error)(self.error.errno, self.error.strerror, str(context["path"]))
        raise self.error


class HangAt:
    """Say so on stderr, then sleep, when step `step` is reached (a process to kill there)."""

    def __init__(self, step: str, seconds: float = 600.0) -> None:
        self.step, self.seconds = step, seconds

    def __call__(self, name: str, **_: Any) -> None:
        """Hang at the step."""
        if name == self.step:
            import sys
            import time

            print(f"hanging at {name}", file=sys.stderr, flush=True)
            time.sleep(self.seconds)
