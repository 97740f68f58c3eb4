"""The `training_serving_parity` gate: logged serving features against recomputed ones.

The serving path logs the features it computed for each request. The release recomputes them
from the logged raw request with the shared feature code (`serving_features_recomputed`) and
compares value by value in one SQL join: numeric features within `atol + rtol * |recomputed|`,
categorical features exactly, null equal only to null. Each logged JSON is parsed once for all
its features (`json_extract_string` with a list of paths), not once per feature.
"""

import duckdb

from ml_release.dbfile import one
from ml_release.gates.catalog import ParityParams
from ml_release.gates.result import GateResult, Verdict
from ml_release.identifiers import quote
from ml_release.spec import ReleaseSpec

LOGGED = "logged_features__"  # the logged features parsed: a list in spec.features.all order


def _logged(spec: ReleaseSpec, feature: str) -> str:
    text = f"s.{LOGGED}[{spec.features.all.index(feature) + 1}]"
    return f"TRY_CAST({text} AS DOUBLE)" if feature in spec.features.numeric else text


def _join(spec: ReleaseSpec, log_table: str, recomputed_table: str) -> str:
    """The serving log (its logged features parsed once) joined to the recomputed features."""
    key = quote(spec.data.serving_log.request_id_column)
    paths = ", ".join(f"'$.{feature}'" for feature in spec.features.all)
    logged = (
        f"json_extract_string({quote(spec.data.serving_log.logged_features_column)}, [{paths}])"
    )
    return (
        f"FROM (SELECT {key}, {logged} AS {LOGGED} FROM {quote(log_table)}) s "
        f"LEFT JOIN {quote(recomputed_table)} r ON s.{key} = r.{key}"
    )


def _mismatch(spec: ReleaseSpec, feature: str, params: ParityParams) -> str:
    numeric = feature in spec.features.numeric
    logged = _logged(spec, feature)
    mine = f"r.{quote(feature)}"
    if not numeric:
        return f"({logged} IS DISTINCT FROM CAST({mine} AS VARCHAR))"
    mine = f"CAST({mine} AS DOUBLE)"
    close = f"abs({logged} - {mine}) <= {params.atol!r} + {params.rtol!r} * abs({mine})"
    return (
        f"NOT (({logged} IS NULL AND {mine} IS NULL) OR "
        f"({logged} IS NOT NULL AND {mine} IS NOT NULL AND {close}))"
    )


def _examples(
    connection: duckdb.DuckDBPyConnection,
    spec: ReleaseSpec,
    join: str,
    failing: list[str],
    params: ParityParams,
) -> list[dict]:
    """Up to `params.examples` mismatching requests of each failing feature."""
    key = spec.data.serving_log.request_id_column
    examples: list[dict] = []
    for feature in failing if params.examples else []:
        logged = _logged(spec, feature)
        found = connection.execute(
            f"SELECT s.{quote(key)}, {logged}, r.{quote(feature)} {join} "
            f"WHERE {_mismatch(spec, feature, params)} LIMIT {int(params.examples)}"
        ).fetchall()
        examples += [
            {"request_id": rid, "feature": feature, "logged": str(lv), "recomputed": str(rv)}
            for rid, lv, rv in found
        ]
    return examples


def check_parity(
    connection: duckdb.DuckDBPyConnection,
    spec: ReleaseSpec,
    log_table: str,
    recomputed_table: str,
    params: ParityParams,
    name: str = "training_serving_parity",
) -> GateResult:
    """Compare every logged feature with its recomputed value, row by row."""
    key = spec.data.serving_log.request_id_column
    features = spec.features.all
    join = _join(spec, log_table, recomputed_table)
    counts = one(
        connection,
        f"SELECT count(*), count(r.{quote(key)}), count(DISTINCT s.{quote(key)}), "
        + ", ".join(f"coalesce(count_if({_mismatch(spec, f, params)}), 0)" for f in features)
        + f" {join}",
    )
    total, matched, distinct, *mismatches = counts
    rows = []
    for feature, bad in zip(features, mismatches, strict=True):
        rate = bad / total if total else 0.0
        rows.append(
            {
                "column": feature,
                "mismatch_rate": rate,
                "mismatches": int(bad),
                "limit": params.max_mismatch_rate,
                "status": "fail" if rate > params.max_mismatch_rate else "ok",
            }
        )
    failing = [r for r in rows if r["status"] == "fail"]
    examples = _examples(connection, spec, join, [r["column"] for r in failing], params)
    worst = max(rows, key=lambda r: r["mismatch_rate"]) if rows else {}
    duplicates = total - distinct
    if duplicates:
        verdict, summary = (
            Verdict.INCONCLUSIVE,
            (
                f"{duplicates} duplicate {key} values: row-level parity is ambiguous; deduplicate "
                "the serving log"
            ),
        )
    elif failing:
        verdict = Verdict.FAIL
        summary = "serving features differ from the shared feature code in " + ", ".join(
            f"{r['column']} ({r['mismatch_rate']:.1%} of rows)" for r in failing
        )
    else:
        verdict, summary = Verdict.PASS, f"all {len(features)} features agree on {total} requests"
    return GateResult(
        gate=name,
        target=recomputed_table,
        verdict=verdict,
        summary=summary,
        method=f"row-level join on {key}; numeric |logged - recomputed| <= "
        f"{params.atol:g} + {params.rtol:g}*|recomputed|, categorical exact",
        observed=worst.get("mismatch_rate"),
        baseline=0.0,
        threshold=params.max_mismatch_rate,
        support={"requests": int(total), "recomputed": int(matched), "duplicates": duplicates},
        rows=rows,
        examples=examples,
        spec_hash=spec.spec_hash,
    )
