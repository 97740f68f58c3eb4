"""The logged serving request is part of the contract: its JSON fields, checked before scoring.

The serving log stores each raw request as JSON text. A field renamed inside it is not a
Parquet column: read with `reindex`, it silently becomes nulls, and the quality gates would
score the damaged rows. Every place that reads logged requests (the serving feature table, the
`serving` evaluation set, shadow replay and canaries, and `ml-release validate`) runs them
through `RequestFieldCheck` first. Missing, unexpected (with a "did you mean" for a rename),
mistyped and unparsable fields are one `DataInputError`, in the words of a renamed column.

A field may be null (a missing value, judged by the null-rate gate); it may not be absent. The
fields a request may carry are the feature code's `REQUIRED_COLUMNS`, `data.id_column` (and
`data.query_column` for ranking), and `data.serving_log.request_extra_fields`.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING

import orjson

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.spec import ReleaseSpec, close_matches

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 3
SCAN_BATCH = 50_000


@dataclass
class _Field:
    missing: int = 0
    mistyped: int = 0
    seen_as: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


# The Python types json.loads gives a field that fits its kind (bool is not a number).
_NUMERIC_TYPES = {int, float, type(None)}
_CATEGORICAL_TYPES = {str, int, float, bool, type(None)}


def load_request(text: object) -> object:
    """The parsed logged request, or None when it is no JSON text.

    orjson parses strict JSON about twice as fast as `json`; what it refuses (`NaN`, which
    Python's json.dumps writes for a missing float, lone surrogates) goes through `json`, so
    both accept the same texts. (Integers beyond 64 bits come back as floats.)
    """
    if not isinstance(text, str | bytes):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except ValueError:
            return None


def _fits(value: object, kind: str) -> bool:
    if value is None:
        return True
    found = _kind_of(value)
    return found == "number" if kind == "numeric" else found in ("text", "number", "boolean")


class RequestFieldCheck:
    """Accumulates what is wrong with logged requests, batch by batch; `raise_if_any` reports.

    Args:
        required: Field -> `numeric` / `categorical` (the feature code's REQUIRED_COLUMNS).
        allowed: Further fields a request may carry (ids, metadata).
    """

    def __init__(self, required: dict[str, str], allowed: Iterable[str] = ()):
        self.required = dict(required)
        self.allowed = set(allowed) - set(required)
        self.fields = {name: _Field() for name in required}
        self.extra: dict[str, _Field] = {}
        self.unreadable = _Field()
        self.requests = 0

    def add(self, request_ids: Iterable[object], texts: Iterable[object]) -> list:
        """Check one batch of logged requests (`texts` as stored, JSON text or null).

        Returns the parsed requests (None for one that is no JSON), so callers parse once.
        """
        ids = list(request_ids)
        parsed = [load_request(text) for text in texts]
        if len(parsed) != len(ids):
            raise ValueError(f"{len(ids)} request ids for {len(parsed)} requests")
        if self._clean(parsed):  # the common case, checked column-wise at C speed
            self.requests += len(parsed)
            return parsed
        for request_id, request in zip(ids, parsed, strict=True):
            self._add_one(request_id, request)
        return parsed

    def _clean(self, parsed: list) -> bool:
        """True when every request is an object with every field present and well typed."""
        if not all(type(request) is dict for request in parsed):
            return False
        fields = self.required.keys() | self.allowed
        for shape in set(map(tuple, parsed)):  # each distinct list of fields once (usually one)
            if not self.required.keys() <= set(shape) <= fields:
                return False
        for name, kind in self.required.items():
            found = set(map(type, map(itemgetter(name), parsed)))
            if not found <= (_NUMERIC_TYPES if kind == "numeric" else _CATEGORICAL_TYPES):
                return False
        return True

    def _add_one(self, request_id: object, parsed: object) -> None:
        self.requests += 1
        if not isinstance(parsed, dict):
            _note(self.unreadable, "missing", request_id)
            return
        for name, kind in self.required.items():
            if name not in parsed:
                _note(self.fields[name], "missing", request_id)
            elif not _fits(parsed[name], kind):
                entry = self.fields[name]
                _note(entry, "mistyped", request_id)
                seen = _kind_of(parsed[name])
                entry.seen_as[seen] = entry.seen_as.get(seen, 0) + 1
        for name in parsed:
            if name not in self.required and name not in self.allowed:
                _note(self.extra.setdefault(name, _Field()), "missing", request_id)

    def problems(self) -> list[str]:
        """One line per problem found so far."""
        total, lines = self.requests, []
        if self.unreadable.missing:
            lines.append(
                f"{self.unreadable.missing:,} of {total:,} requests are not a JSON object (null, "
                f"invalid JSON or another type), e.g. {_ids(self.unreadable)}"
            )
        extra = list(self.extra)
        for name, entry in self.fields.items():
            if entry.missing:
                lines.append(
                    f"field {name!r} is missing from {entry.missing:,} of {total:,} requests, "
                    f"e.g. {_ids(entry)}.{close_matches(name, extra)}"
                )
            if entry.mistyped:
                seen = ", ".join(f"{kind} ({n:,})" for kind, n in entry.seen_as.items())
                lines.append(
                    f"field {name!r} must be {_expected(self.required[name])} but holds {seen}"
                    f" in {entry.mistyped:,} of {total:,} requests, e.g. {_ids(entry)}"
                    + (" (numbers stored as text?)" if "text" in entry.seen_as else "")
                )
        for name, entry in self.extra.items():
            lines.append(
                f"field {name!r} is not expected ({entry.missing:,} of {total:,} requests, e.g. "
                f"{_ids(entry)}).{close_matches(name, list(self.fields))}"
            )
        return lines

    def raise_if_any(self, where: str) -> None:
        """Raise DataInputError listing every problem, or return when the requests are fine."""
        problems = self.problems()
        if problems:
            raise DataInputError(
                f"{where}: the logged requests do not match the request contract (the fields "
                "the feature code reads):\n  - "
                + "\n  - ".join(problems)
                + "\nFix: correct the serving log's export, or update REQUIRED_COLUMNS and "
                "compute_features; list fields production sends but the model does not read "
                "under data.serving_log.request_extra_fields."
            )


def _note(entry: _Field, what: str, request_id: object) -> None:
    setattr(entry, what, getattr(entry, what) + 1)
    if len(entry.examples) < EXAMPLES:
        entry.examples.append(str(request_id))


def _ids(entry: _Field) -> str:
    return "request " + ", ".join(entry.examples)


def _expected(kind: str) -> str:
    return "a number (or null)" if kind == "numeric" else "a string or number (or null)"


def request_check(spec: ReleaseSpec, required: dict[str, str]) -> RequestFieldCheck:
    """A check for `spec`'s logged requests: `required` plus the fields they may also carry."""
    data = spec.data
    roles = [data.id_column, *([data.query_column] if data.query_column else [])]
    return RequestFieldCheck(required, [*roles, *data.serving_log.request_extra_fields])


def where_logged(spec: ReleaseSpec) -> str:
    """The serving log's request column and source, for messages."""
    log = spec.data.serving_log
    return (
        f"{keys.SERVING_LOG}.{log.request_column} ({spec.source_for(keys.SERVING_LOG).describe()})"
    )


def requests_frame(parsed: list[dict], columns: list[str], index=None) -> "pd.DataFrame":
    """The checked requests as a frame of `columns`, one row per request.

    Every request holds every column: `RequestFieldCheck` found none missing.
    """
    import pandas as pd

    pick = itemgetter(*columns)
    rows = [pick(request) for request in parsed]
    if len(columns) == 1:
        rows = [(value,) for value in rows]
    return pd.DataFrame(rows, columns=columns, index=index)


def checked_requests(
    spec: ReleaseSpec, required: dict[str, str], request_ids: Iterable[object], texts: Iterable
) -> list[dict]:
    """Logged requests parsed once and checked; DataInputError naming every problem."""
    check = request_check(spec, required)
    parsed = check.add(request_ids, texts)
    check.raise_if_any(where_logged(spec))
    return parsed
