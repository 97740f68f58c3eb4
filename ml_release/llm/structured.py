"""Structured answers: does the answer parse as JSON, and does it match the route's schema."""

import json
from dataclasses import dataclass
from functools import lru_cache

import jsonschema


@dataclass(frozen=True)
class StructuredCheck:
    """One structured answer's reading; `problem` says why it fails, empty when it passes."""

    json_valid: bool
    schema_valid: bool
    problem: str = ""


@lru_cache(maxsize=64)
def _validator(schema_text: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_structured(answer: str, schema: dict) -> StructuredCheck:
    """Parse `answer` as JSON (surrounding whitespace allowed, nothing else) and validate it."""
    try:
        value = json.loads(answer)
    except json.JSONDecodeError as exc:
        return StructuredCheck(False, False, f"not JSON: {exc.msg} at character {exc.pos}")
    errors = sorted(
        _validator(json.dumps(schema, sort_keys=True)).iter_errors(value), key=lambda e: e.path
    )
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(root)"
        return StructuredCheck(True, False, f"schema: {where}: {first.message}")
    return StructuredCheck(True, True)
