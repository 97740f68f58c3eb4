"""Column profiles computed in DuckDB: a few scans for the reference, two for each target.

The reference profile (null counts, finite min/max, quantile bin edges with their counts, and
category counts) is computed once per reference table and stored in the warehouse. A target is
then profiled with one aggregate query over the same bins (numeric columns) and one
grouping-sets query (category counts), whatever the number of gates and columns.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from ml_release.featurize import is_numeric_type
from ml_release.identifiers import quote
from ml_release.warehouse import one


@dataclass
class ColumnProfile:
    """What one scan learned about one column."""

    name: str
    kind: str  # "numeric" or "categorical"
    dtype: str
    nonnull: int = 0
    nonfinite: int = 0
    min: float | None = None
    max: float | None = None
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    out_of_range: int = 0
    allowed_range: tuple[float | None, float | None] | None = None


@dataclass
class Profile:
    """Row count and per-column profiles of one table; `unavailable` says what was skipped."""

    rows: int
    columns: dict[str, ColumnProfile]
    unavailable: dict[str, str] = field(default_factory=dict)
    bins: int = 0

    def to_json(self) -> str:
        """Serialise for storage in the warehouse."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Profile":
        """Inverse of `to_json`."""
        data = json.loads(text)
        columns = {k: ColumnProfile(**v) for k, v in data.pop("columns").items()}
        return cls(columns=columns, **data)


def _double(column: str) -> str:
    return f"CAST({quote(column)} AS DOUBLE)"


def _finite(column: str) -> str:
    return f"CASE WHEN isfinite({_double(column)}) THEN {_double(column)} END"


def _histogram(column: str, edges: list[float]) -> str:
    # Edges are floats this module computed, never user text, so formatting them is safe.
    return f"histogram({_finite(column)}, [{', '.join(repr(float(e)) for e in edges)}]::DOUBLE[])"


def _usable(kinds: dict[str, str], dtypes: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    usable, unavailable = {}, {}
    for column, kind in kinds.items():
        if column not in dtypes:
            unavailable[column] = "column missing"
        elif kind == "numeric" and not is_numeric_type(dtypes[column]):
            unavailable[column] = f"expected a numeric type, found {dtypes[column]}"
        else:
            usable[column] = kind
    return usable, unavailable


def _run(connection: duckdb.DuckDBPyConnection, relation: str, params: list, exprs: list[str]):
    return one(connection, f"SELECT {', '.join(exprs)} FROM {relation}", params)


def _bucket_counts(histogram: dict[float, int] | None, edges: list[float]) -> list[int]:
    histogram = histogram or {}
    return [int(histogram.get(edge, 0)) for edge in edges] + [int(histogram.get(math.inf, 0))]


def category_counts(
    connection: duckdb.DuckDBPyConnection, relation: str, params: list, columns: list[str]
) -> dict[str, dict[str, int]]:
    """Value counts of several categorical columns in one GROUPING SETS query.

    `histogram(col)` next to other aggregates makes DuckDB materialize every row first; one
    grouping-sets aggregate keeps memory bounded by the number of distinct values.
    """
    if not columns:
        return {}
    values = [f"CAST({quote(c)} AS VARCHAR)" for c in columns]
    flags = [f"GROUPING({quote(c)})" for c in columns]
    sets = ", ".join(f"({quote(c)})" for c in columns)
    rows = connection.execute(
        f"SELECT {', '.join(values)}, {', '.join(flags)}, count(*) FROM {relation} "
        f"WHERE TRUE GROUP BY GROUPING SETS ({sets})",
        params,
    ).fetchall()
    counts: dict[str, dict[str, int]] = {c: {} for c in columns}
    n = len(columns)
    for row in rows:
        grouped = [i for i in range(n) if row[n + i] == 0]
        value = row[grouped[0]] if grouped else None
        if grouped and value is not None:
            counts[columns[grouped[0]]][str(value)] = int(row[-1])
    return counts


def relation_dtypes(connection: duckdb.DuckDBPyConnection, relation: str, params: list):
    """Column name → DuckDB type of a relation (a quoted table or a table function)."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
    return {row[0]: row[1] for row in described}


def profile_reference(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    params: list,
    kinds: dict[str, str],
    bins: int,
) -> Profile:
    """Profile the reference: quantile edges first, then counts over those edges."""
    dtypes = relation_dtypes(connection, relation, params)
    usable, unavailable = _usable(kinds, dtypes)
    quantiles = [i / bins for i in range(1, bins)]
    exprs = ["count(*)"]
    for column, kind in usable.items():
        exprs.append(f"count({quote(column)})")
        if kind == "numeric":
            exprs += [
                f"coalesce(count_if(NOT isfinite({_double(column)})), 0)",
                f"min({_finite(column)})",
                f"max({_finite(column)})",
                f"approx_quantile({_finite(column)}, {quantiles})",
            ]
    row = list(_run(connection, relation, params, exprs))
    rows = int(row.pop(0))
    categories = category_counts(
        connection, relation, params, [c for c, k in usable.items() if k == "categorical"]
    )
    profiles: dict[str, ColumnProfile] = {}
    for column, kind in usable.items():
        profile = ColumnProfile(column, kind, dtypes[column], nonnull=int(row.pop(0)))
        if kind == "numeric":
            profile.nonfinite = int(row.pop(0))
            profile.min, profile.max = row.pop(0), row.pop(0)
            cuts = row.pop(0) or []
            profile.edges = sorted({float(c) for c in cuts if c is not None})
            if not profile.edges and profile.min is not None:
                profile.edges = [float(profile.min)]
        else:
            profile.categories = categories[column]
        profiles[column] = profile
    numeric = [p for p in profiles.values() if p.kind == "numeric"]
    if numeric:
        counts = _run(
            connection,
            relation,
            params,
            [_histogram(p.name, p.edges) for p in numeric],
        )
        for profile, histogram in zip(numeric, counts, strict=True):
            profile.counts = _bucket_counts(histogram, profile.edges)
    return Profile(rows, profiles, unavailable, bins)


def profile_target(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    params: list,
    reference: Profile,
    ranges: dict[str, tuple[float | None, float | None]],
) -> Profile:
    """Profile a target in one scan, over the reference's bins and the allowed `ranges`."""
    dtypes = relation_dtypes(connection, relation, params)
    kinds = {name: column.kind for name, column in reference.columns.items()}
    usable, unavailable = _usable(kinds, dtypes)
    exprs = ["count(*)"]
    for column, kind in usable.items():
        exprs.append(f"count({quote(column)})")
        if kind == "numeric":
            low, high = ranges.get(column, (None, None))
            bounds = []
            if low is not None:
                bounds.append(f"{_finite(column)} < {float(low)!r}")
            if high is not None:
                bounds.append(f"{_finite(column)} > {float(high)!r}")
            outside = " OR ".join(bounds) or "FALSE"
            exprs += [
                f"coalesce(count_if(NOT isfinite({_double(column)})), 0)",
                f"min({_finite(column)})",
                f"max({_finite(column)})",
                f"coalesce(count_if({outside}), 0)",
                _histogram(column, reference.columns[column].edges),
            ]
    row = list(_run(connection, relation, params, exprs))
    rows = int(row.pop(0))
    categories = category_counts(
        connection, relation, params, [c for c, k in usable.items() if k == "categorical"]
    )
    profiles: dict[str, ColumnProfile] = {}
    for column, kind in usable.items():
        profile = ColumnProfile(column, kind, dtypes[column], nonnull=int(row.pop(0)))
        if kind == "numeric":
            ref = reference.columns[column]
            profile.nonfinite = int(row.pop(0))
            profile.min, profile.max = row.pop(0), row.pop(0)
            profile.out_of_range = int(row.pop(0))
            profile.allowed_range = ranges.get(column)
            profile.edges = ref.edges
            profile.counts = _bucket_counts(row.pop(0), ref.edges)
        else:
            profile.categories = categories[column]
        profiles[column] = profile
    return Profile(rows, profiles, unavailable, reference.bins)


def profile_summary(profile: Profile) -> dict[str, Any]:
    """A small dict for logs and metadata."""
    return {"rows": profile.rows, "columns": len(profile.columns), **profile.unavailable}
