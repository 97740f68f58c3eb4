"""Errors users see, each with a stable CLI exit code.

Exit codes (documented in docs/cli.md and stable across releases):
0 released / all blocking gates passed, 1 blocked by a gate, 2 bad input (spec, data, arguments),
3 conflict or lock, 4 integrity (digest, corrupt artifact), 5 environment (missing tool, server).
"""

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_CONFLICT = 3
EXIT_INTEGRITY = 4
EXIT_ENVIRONMENT = 5


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


class ServiceUnavailableError(ReleaseError):
    """A server the configuration names (the registry's database) cannot be reached."""

    exit_code = EXIT_ENVIRONMENT
