"""Errors users see, each with a stable CLI exit code, mapped here and nowhere else.

Exit codes (documented in docs/cli.md and stable across releases):
0 released / all blocking gates passed, 1 blocked by a gate (and nothing else: CI systems read
1 as "the gates said no"), 2 bad input (spec, data, arguments), 3 conflict, lock, stale verdicts
or a wait that ran out, 4 integrity (digest, corrupt or unsafe artifact, corrupt state file),
5 environment (a tool or server, a full disk, a permission), 70 internal error (a bug: the
traceback is saved, never printed), 130 / 143 interrupted by SIGINT / SIGTERM.

`exit_code_of` maps any exception, and `exit_code_of_failure` a failure Dagster reports by class
name and message (a run's failed step), with the same rules.
"""

import errno

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_CONFLICT = 3
EXIT_INTEGRITY = 4
EXIT_ENVIRONMENT = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130  # SIGINT; SIGTERM exits 143 (128 + the signal number, as shells do)

ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "Could not write all bytes")


class ReleaseError(Exception):
    """Base class: a message a user can act on, and the exit code of its class."""

    exit_code = EXIT_ENVIRONMENT


class SpecError(ReleaseError):
    """The release spec is missing, malformed, or names something that does not exist."""

    exit_code = EXIT_BAD_INPUT


class ConfigurationError(ReleaseError):
    """A setting (an environment variable, a resource's configuration) has an unusable value."""

    exit_code = EXIT_BAD_INPUT


class DataInputError(ReleaseError):
    """A data source cannot be read or does not have the shape the release needs."""

    exit_code = EXIT_BAD_INPUT


class DatabaseLockedError(ReleaseError):
    """Another process held a database file (warehouse, registry) past the lock timeout."""

    exit_code = EXIT_CONFLICT


class ConflictError(ReleaseError):
    """The operation lost a race or contradicts recorded state (version reused, alias moved)."""

    exit_code = EXIT_CONFLICT


class NotFoundError(ReleaseError):
    """A model, version or artifact the command names does not exist."""

    exit_code = EXIT_BAD_INPUT


class IntegrityError(ReleaseError):
    """An artifact is missing, corrupt, or its digest does not match its manifest."""

    exit_code = EXIT_INTEGRITY


class PromotionRefused(ReleaseError):
    """A gate that must pass is missing, failed or stale for this candidate: no promotion."""

    exit_code = EXIT_BLOCKED


class EnvironmentProblem(ReleaseError):
    """The machine stopped the operation: a full disk, a permission, a read-only filesystem."""

    exit_code = EXIT_ENVIRONMENT


class CorruptStateError(IntegrityError):
    """A state file (registry, warehouse) is not a readable database any more."""


class Interrupted(ReleaseError):
    """SIGINT or SIGTERM stopped the command; its run was marked canceled."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class WaitedTooLong(ReleaseError):
    """A resource another run holds (the warehouse pool) stayed busy past the bounded wait."""

    exit_code = EXIT_CONFLICT


def _error_classes() -> dict[str, type[ReleaseError]]:
    found: dict[str, type[ReleaseError]] = {}
    todo: list[type[ReleaseError]] = [ReleaseError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


DISK_FULL_ADVICE = (
    "Nothing half-written was kept; free space (old runs under $ML_RELEASE_HOME/reports, "
    "tmp/), then retry the command."
)


def environment_message(error: OSError) -> str:
    """What to do about an OSError the machine raised, naming the path."""
    where = f" at {error.filename}" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full{where}: {error.strerror}. {DISK_FULL_ADVICE}"
    return f"{error.strerror}{where}. Fix the permissions or the mount, then retry."


def failure_advice(class_name: str, message: str) -> str | None:
    """What to do about a failed step the machine stopped (exit 5); None for other failures."""
    if exit_code_of_failure(class_name, message) != EXIT_ENVIRONMENT:
        return None
    if any(text in message for text in DISK_FULL_TEXT) or "[Errno 28]" in message:
        return f"the disk is full. {DISK_FULL_ADVICE}"
    return "the machine refused a write. Fix the permissions or the mount, then retry."


def exit_code_of(error: BaseException) -> int:
    """The exit code of any exception: its class's, or the rule for the machine's errors."""
    if isinstance(error, ReleaseError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
        return EXIT_ENVIRONMENT
    if any(text in str(error) for text in DISK_FULL_TEXT):
        return EXIT_ENVIRONMENT
    return EXIT_INTERNAL


def exit_code_of_failure(class_name: str, message: str) -> int:
    """The exit code of a failure known by its class name and message (a failed step)."""
    known = _error_classes().get(class_name)
    if known is not None:
        return known.exit_code
    if any(text in message for text in DISK_FULL_TEXT) or "[Errno 28]" in message:
        return EXIT_ENVIRONMENT
    if class_name in ("PermissionError", "ReadOnlyFileSystemError"):
        return EXIT_ENVIRONMENT
    return EXIT_INTERNAL


class ServiceUnavailableError(ReleaseError):
    """A server the configuration names (the registry's database) cannot be reached."""

    exit_code = EXIT_ENVIRONMENT
