"""Column profiles computed in DuckDB SQL: three scans for the reference.

The reference profile (null counts, finite min/max, quantile bin edges with their counts, and
category counts) is computed once per reference table and stored in the warehouse. A target is
profiled over the same bins by `ml_release.contract.target_profile`, which computes the same
numbers faster; `column_stats` stays the plain SQL statement of what they mean.
"""

import json
import math
from dataclasses import asdict, dataclass, field

import duckdb

from ml_release.dbfile import one, setting
from ml_release.featurize import is_numeric_type
from ml_release.identifiers import quote


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


FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def finite_value(column: str, dtype: str) -> str:
    """SQL for the column as DOUBLE, NULL where it is NaN or ±inf."""
    value = f"CAST({quote(column)} AS DOUBLE)"
    if dtype.upper() not in FLOAT_TYPES:
        return value  # integers and decimals are always finite
    return f"CASE WHEN isfinite({value}) THEN {value} END"


def usable_columns(
    kinds: dict[str, str], dtypes: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Split the contract columns into usable ones and unavailable ones (with the reason)."""
    usable, unavailable = {}, {}
    for column, kind in kinds.items():
        if column not in dtypes:
            unavailable[column] = "column missing"
        elif kind == "numeric" and not is_numeric_type(dtypes[column]):
            unavailable[column] = f"expected a numeric type, found {dtypes[column]}"
        else:
            usable[column] = kind
    return usable, unavailable


def relation_dtypes(connection: duckdb.DuckDBPyConnection, relation: str, params: list):
    """Column name → DuckDB type of a relation (a quoted table or a table function)."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
    return {row[0]: row[1] for row in described}


def column_stats(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    params: list,
    usable: dict[str, str],
    dtypes: dict[str, str],
    ranges: dict[str, tuple[float | None, float | None]],
    edges: dict[str, list[float]] | None = None,
    quantiles: list[float] | None = None,
) -> tuple[int, dict[str, ColumnProfile]]:
    """One aggregate scan of the statistics every contract gate needs, in plain SQL.

    Rows; per column the non-null count; per numeric column the finite count, min and max, the
    out-of-range count, counts over the bin `edges` (as cumulative `count_if`, measured faster
    than `histogram(x, edges)` or a grouping-sets aggregate) and, for a reference, quantiles.
    A reference column of whole numbers gets each quantile edge k moved to k + 0.5: bins are
    (a, b], so the reference's counts are the same, while a target whose values move by less
    than half a unit (30 → 30.01) stays in its bins instead of every tied value crossing one.
    Targets are profiled by `target_profile.profile_target`, which must give the same numbers.
    """
    inner, outer = [], ["count(*)"]
    for i, (column, kind) in enumerate(usable.items()):
        inner.append(f"{quote(column)} AS r{i}")
        outer.append(f"count(r{i})")
        if kind != "numeric":
            continue
        inner.append(f"{finite_value(column, dtypes[column])} AS f{i}")
        low, high = ranges.get(column, (None, None))
        bounds = []
        if low is not None:
            bounds.append(f"f{i} < {float(low)!r}")
        if high is not None:
            bounds.append(f"f{i} > {float(high)!r}")
        outer += [
            f"count(f{i})",
            f"min(f{i})",
            f"max(f{i})",
            f"coalesce(count_if({' OR '.join(bounds) or 'FALSE'}), 0)",
        ]
        # Edges are floats this module computed, never user text, so formatting them is safe.
        outer += [
            f"coalesce(count_if(f{i} <= {float(e)!r}), 0)" for e in (edges or {}).get(column, [])
        ]
        if quantiles:
            outer.append(f"approx_quantile(f{i}, {quantiles})")
            outer.append(f"count_if(f{i} <> floor(f{i}))")  # values that are not whole
    row = list(
        one(
            connection,
            f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner) or '1'} FROM {relation})",
            params,
        )
    )
    rows = int(row.pop(0))
    profiles = {}
    for column, kind in usable.items():
        profile = ColumnProfile(column, kind, dtypes[column], nonnull=int(row.pop(0)))
        if kind == "numeric":
            finite = int(row.pop(0))
            profile.nonfinite = profile.nonnull - finite
            profile.min, profile.max = row.pop(0), row.pop(0)
            profile.out_of_range = int(row.pop(0))
            profile.allowed_range = ranges.get(column)
            profile.edges = (edges or {}).get(column, [])
            cumulative = [int(row.pop(0)) for _ in profile.edges] + [finite]
            profile.counts = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
            if quantiles:
                cuts = [float(c) for c in row.pop(0) or [] if c is not None]
                if row.pop(0) == 0:  # whole numbers: cut halfway between them (see below)
                    cuts = [math.floor(c) + 0.5 for c in cuts]
                profile.edges = sorted(set(cuts))
                if not profile.edges and profile.min is not None:
                    profile.edges = [float(profile.min)]
        profiles[column] = profile
    return rows, profiles


def category_counts(
    connection: duckdb.DuckDBPyConnection, relation: str, params: list, columns: list[str]
) -> dict[str, dict[str, int]]:
    """Value counts of several categorical columns in one GROUPING SETS query.

    One hash aggregate per column, bounded by its distinct values: `histogram(col)` next to
    other aggregates made DuckDB hold every row in memory (2.4 GB at 10M rows).
    """
    if not columns:
        return {}
    aliases = [f"g{i}" for i in range(len(columns))]
    values = ", ".join(
        f"CAST({quote(c)} AS VARCHAR) AS {a}" for c, a in zip(columns, aliases, strict=True)
    )
    rows = connection.execute(
        f"SELECT {', '.join(aliases)}, {', '.join(f'GROUPING({a})' for a in aliases)}, count(*) "
        f"FROM (SELECT {values} FROM {relation}) "
        f"GROUP BY GROUPING SETS ({', '.join(f'({a})' for a in aliases)})",
        params,
    ).fetchall()
    counts: dict[str, dict[str, int]] = {c: {} for c in columns}
    n = len(columns)
    for row in rows:
        grouped = next(i for i in range(n) if row[n + i] == 0)
        if row[grouped] is not None:
            counts[columns[grouped]][row[grouped]] = int(row[-1])
    return counts


def _categorical(usable: dict[str, str]) -> list[str]:
    return [c for c, kind in usable.items() if kind == "categorical"]


def profile_reference(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    params: list,
    kinds: dict[str, str],
    bins: int,
) -> Profile:
    """Profile the reference: statistics and quantile edges, then counts over those edges."""
    dtypes = relation_dtypes(connection, relation, params)
    usable, unavailable = usable_columns(kinds, dtypes)
    quantiles = [i / bins for i in range(1, bins)]
    # approx_quantile's t-digest merges the threads' states in whatever order they finish, so on
    # several threads the edges move from run to run (5.57316, then 5.57285 on the same rows);
    # on one thread the same rows always give the same edges, so PSI is reproducible.
    with setting(connection, "threads", 1):
        rows, first = column_stats(
            connection, relation, params, usable, dtypes, {}, quantiles=quantiles
        )
    edges = {c: p.edges for c, p in first.items() if p.kind == "numeric"}
    _, profiles = column_stats(connection, relation, params, usable, dtypes, {}, edges=edges)
    for column, categories in category_counts(
        connection, relation, params, _categorical(usable)
    ).items():
        profiles[column].categories = categories
    return Profile(rows, profiles, unavailable, bins)
