"""The `feature_schema` gate: pandera validates columns and dtypes against the reference.

The expected schema is inferred from the reference table (its Arrow types, so a null never
changes a dtype) for the contract's columns; key columns (ids, timestamp, label) are allowed.
Pandera runs lazily on the first `sample_rows` rows — names and dtypes are the same for every
row — while value rules (nulls, ranges, drift) run in SQL over all rows. A missing column next
to an unexpected one of the same type and a similar name is reported as a possible rename.
"""

import difflib

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow

from ml_release.gates.catalog import FeatureSchemaParams
from ml_release.gates.result import GateResult, Verdict


def _arrow_schema(connection: duckdb.DuckDBPyConnection, relation: str, params: list):
    return (
        connection.sql(f"SELECT * FROM {relation} LIMIT 0", params=params).to_arrow_table().schema
    )


def _rename_hints(
    missing: list[str], unexpected: list[str], expected: pyarrow.Schema, actual: pyarrow.Schema
) -> dict[str, str]:
    hints = {}
    for column in missing:
        same_type = [u for u in unexpected if actual.field(u).type == expected.field(column).type]
        close = difflib.get_close_matches(column, same_type or unexpected, n=1, cutoff=0.5)
        if close:
            hints[column] = close[0]
    return hints


def _row(column: str, expected: str, found: str, status: str) -> dict:
    return {"column": column, "expected": expected, "found": found, "status": status}


def _pandera_failures(
    connection: duckdb.DuckDBPyConnection,
    target: tuple[str, list],
    expected: pyarrow.Schema,
    actual: pyarrow.Schema,
    columns_to_check: tuple[list[str], list[str]],
    params: FeatureSchemaParams,
) -> tuple[int, list[str], list[str], list[str]]:
    """Validate a sample of the target; sampled rows, missing, unexpected, wrong-dtype columns."""
    contract_columns, key_columns = columns_to_check
    columns = {
        c: pa.Column(pd.ArrowDtype(expected.field(c).type), nullable=True, required=True)
        for c in contract_columns
        if c in expected.names
    }
    for key in key_columns:
        if key in actual.names and key not in columns:
            columns[key] = pa.Column(nullable=True, required=False)
    schema = pa.DataFrameSchema(columns, strict=params.strict, ordered=False)
    sample = (
        connection.sql(
            f"SELECT * FROM {target[0]} LIMIT {int(params.sample_rows)}", params=target[1]
        )
        .to_arrow_table()
        .to_pandas(types_mapper=pd.ArrowDtype)
    )
    failures = pd.DataFrame()
    try:
        schema.validate(sample, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    missing, unexpected, wrong_type = [], [], []
    for _, failure in failures.iterrows():
        check = str(failure["check"])
        if check == "column_in_dataframe":
            missing.append(str(failure["failure_case"]))
        elif check == "column_in_schema":
            unexpected.append(str(failure["failure_case"]))
        elif check.startswith("dtype"):
            wrong_type.append(str(failure["column"]))
    return len(sample), missing, unexpected, wrong_type


def check_feature_schema(
    connection: duckdb.DuckDBPyConnection,
    target: tuple[str, list],
    reference: tuple[str, list],
    contract_columns: list[str],
    key_columns: list[str],
    params: FeatureSchemaParams,
    name: str = "feature_schema",
) -> GateResult:
    """Validate the target's structure against the reference with pandera."""
    expected = _arrow_schema(connection, *reference)
    actual = _arrow_schema(connection, *target)
    rows = [
        _row(column, "(absent in reference)", "", "reference lacks a contract column")
        for column in contract_columns
        if column not in expected.names
    ]
    sampled, missing, unexpected, wrong_type = _pandera_failures(
        connection, target, expected, actual, (contract_columns, key_columns), params
    )
    hints = _rename_hints(missing, unexpected, expected, actual)
    renamed_to = {v: k for k, v in hints.items()}
    for column in missing:
        hint = f"; possible rename to {hints[column]!r}" if column in hints else ""
        rows.append(_row(column, str(expected.field(column).type), "(missing)", "missing" + hint))
    for column in unexpected:
        hint = f"; possible rename of {renamed_to[column]!r}" if column in renamed_to else ""
        found = str(actual.field(column).type)
        rows.append(_row(column, "(not in contract)", found, "unexpected" + hint))
    for column in wrong_type:
        found = str(actual.field(column).type)
        rows.append(_row(column, str(expected.field(column).type), found, "wrong dtype"))
    problems = len(rows)
    checked = [c for c in contract_columns if c in expected.names and c in actual.names]
    rows += [
        _row(c, str(expected.field(c).type), str(actual.field(c).type), "ok")
        for c in checked
        if c not in wrong_type
    ]
    summary = (
        f"{problems} schema problem(s): "
        + ", ".join(f"{r['column']} ({r['status']})" for r in rows[:problems])
        if problems
        else f"{len(checked)} contract columns present with the reference dtypes"
    )
    return GateResult(
        gate=name,
        target="",
        verdict=Verdict.FAIL if problems else Verdict.PASS,
        summary=summary,
        method=f"pandera DataFrameSchema (strict={params.strict}) on the first "
        f"{sampled} rows; dtypes inferred from the reference",
        observed=float(problems),
        baseline=0.0,
        threshold=0.0,
        support={"sampled_rows": sampled, "columns": len(actual.names)},
        rows=rows,
    )
