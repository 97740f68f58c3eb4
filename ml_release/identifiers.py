"""Validation and quoting of identifiers (column and table names) that reach SQL.

Identifiers come from the release spec and from data files. They are checked against a strict
ASCII pattern (no quotes, no spaces, no look-alike unicode) *and* quoted before they are placed
in SQL; values are always bound as parameters, never formatted into a statement.
"""

import re

IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
IDENTIFIER_RULE = (
    "letters, digits and underscores, starting with a letter or underscore, at most 63"
)


def is_identifier(name: object) -> bool:
    """True when `name` is a string that matches the identifier pattern."""
    return isinstance(name, str) and IDENTIFIER_PATTERN.fullmatch(name) is not None


def check_identifier(name: object) -> str:
    """Return `name` unchanged, or raise ValueError saying what an identifier may contain."""
    if not is_identifier(name):
        raise ValueError(f"{name!r} is not a safe identifier: use {IDENTIFIER_RULE} characters")
    return str(name)


def quote(name: str) -> str:
    """Quote a validated identifier for DuckDB SQL."""
    return '"' + check_identifier(name) + '"'
