"""Each data-contract gate: a passing case, then a failing case built with a scenario injector."""

import json
from dataclasses import asdict, replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml_release import keys
from ml_release.contract import target_profile
from ml_release.contract.profile import (
    Profile,
    category_counts,
    column_stats,
    profile_reference,
    relation_dtypes,
    usable_columns,
)
from ml_release.contract.run import run_contract, run_parity
from ml_release.demo import scenarios
from ml_release.gates.result import Verdict
from tests.conftest import build_warehouse, read_table, replace_table


def _gate(results, name):
    return next(r for r in results if r.gate == name)


def _evaluate(warehouse, spec, name, target=keys.EVALUATION_FEATURES):
    return _gate(run_contract(warehouse, spec, target), name)


def _break(warehouse, injector, *args, **kwargs):
    frame = read_table(warehouse, keys.EVALUATION_FEATURES)
    replace_table(warehouse, keys.EVALUATION_FEATURES, injector(frame, *args, **kwargs))


def _row(result, column):
    return next(r for r in result.rows if r["column"] == column)


def test_every_contract_gate_passes_on_healthy_data(built):
    spec, warehouse = built
    results = run_contract(warehouse, spec, keys.EVALUATION_FEATURES)
    assert {r.gate: r.verdict for r in results} == {
        "feature_schema": Verdict.PASS,
        "null_rate_threshold": Verdict.PASS,
        "feature_range": Verdict.PASS,
        "categorical_drift": Verdict.PASS,
        "numeric_drift": Verdict.PASS,
    }
    assert all(r.spec_hash == spec.spec_hash for r in results)
    assert all(r.plot_png is None for r in results)  # plots are drawn for findings only


@pytest.mark.reliability("input")
def test_feature_schema_fails_on_a_renamed_feature_with_a_hint(built):
    spec, warehouse = built
    _break(warehouse, scenarios.rename_column, "utilization", "utilisation")
    result = _evaluate(warehouse, spec, "feature_schema")
    assert result.verdict is Verdict.FAIL
    assert "possible rename to 'utilisation'" in _row(result, "utilization")["status"]
    # The value gates cannot judge the missing column: inconclusive, never a pass.
    assert _evaluate(warehouse, spec, "null_rate_threshold").verdict is Verdict.INCONCLUSIVE


@pytest.mark.reliability("input")
def test_feature_schema_fails_on_a_changed_dtype(built):
    spec, warehouse = built
    _break(warehouse, scenarios.change_dtype, "age")
    result = _evaluate(warehouse, spec, "feature_schema")
    assert result.verdict is Verdict.FAIL
    assert _row(result, "age")["status"] == "wrong dtype"


@pytest.mark.reliability("input")
def test_feature_schema_strictness_on_an_extra_column(built, tmp_path):
    spec, warehouse = built
    _break(warehouse, lambda df: df.assign(debug_score=1.0))
    strict = _evaluate(warehouse, spec, "feature_schema")
    assert strict.verdict is Verdict.FAIL and _row(strict, "debug_score")["status"] == "unexpected"
    lenient_gates = [
        g.model_copy(update={"params": g.params.model_copy(update={"strict": False})})
        if g.name == "feature_schema"
        else g
        for g in spec.gates
    ]
    lenient = spec.model_copy(update={"gates": lenient_gates})
    assert _evaluate(warehouse, lenient, "feature_schema").verdict is Verdict.PASS


@pytest.mark.reliability("input")
def test_reordered_columns_pass_the_schema(built):
    spec, warehouse = built
    _break(warehouse, lambda df: df[list(reversed(df.columns))])
    assert _evaluate(warehouse, spec, "feature_schema").verdict is Verdict.PASS


def test_null_rate_fails_on_a_null_flood_with_examples(built):
    spec, warehouse = built
    _break(warehouse, scenarios.null_flood, "debt_to_income", rate=0.2)
    result = _evaluate(warehouse, spec, "null_rate_threshold")
    assert result.verdict is Verdict.FAIL
    assert _row(result, "debt_to_income")["null_rate"] == pytest.approx(0.2, abs=0.03)
    assert result.examples and all(e["debt_to_income"] is None for e in result.examples)
    assert "customer_id" in result.examples[0]


@pytest.mark.reliability("input")
def test_null_rate_counts_infinities_and_all_null_columns(built):
    spec, warehouse = built

    def damage(df):
        df = df.copy()
        df.loc[df.index[:30], "age"] = np.inf
        df["months_employed"] = np.nan
        return df

    _break(warehouse, damage)
    result = _evaluate(warehouse, spec, "null_rate_threshold")
    assert _row(result, "age")["status"] == "fail"
    assert _row(result, "months_employed")["null_rate"] == 1.0


def test_null_rate_limit_per_column_from_the_contract(built):
    spec, warehouse = built  # release.yaml allows months_employed 1% nulls
    _break(warehouse, scenarios.null_flood, "months_employed", rate=0.005)
    assert _evaluate(warehouse, spec, "null_rate_threshold").verdict is Verdict.PASS


def test_feature_range_fails_on_out_of_range_values(built):
    spec, warehouse = built
    _break(warehouse, scenarios.out_of_range, "debt_to_income", rate=0.05, factor=40)
    result = _evaluate(warehouse, spec, "feature_range")
    assert result.verdict is Verdict.FAIL
    row = _row(result, "debt_to_income")
    assert 0.01 < row["out_of_range_rate"] < 0.06
    assert result.examples


def test_feature_range_uses_explicit_ranges(built):
    spec, warehouse = built  # release.yaml: age in [18, 100]

    def old(df):
        df = df.copy()
        df.loc[df.index[:40], "age"] = 130.0
        return df

    _break(warehouse, old)
    result = _evaluate(warehouse, spec, "feature_range")
    assert _row(result, "age")["allowed_max"] == 100
    assert _row(result, "age")["status"] == "fail"


def test_numeric_drift_fails_on_a_shift_and_plots_it(built):
    spec, warehouse = built
    _break(warehouse, scenarios.distribution_shift, "log_income", strength=1.0)
    result = _evaluate(warehouse, spec, "numeric_drift")
    assert result.verdict is Verdict.FAIL
    assert _row(result, "log_income")["psi"] > 0.2
    assert _row(result, "age")["status"] == "ok"
    assert result.plot_png.startswith(b"\x89PNG")


def test_numeric_drift_on_whole_numbers_sees_shifts_not_sub_unit_moves(built):
    spec, warehouse = built  # age is a whole number of years, std ~12
    _break(warehouse, scenarios.distribution_shift, "age", strength=0.02)  # +0.25 years
    assert _row(_evaluate(warehouse, spec, "numeric_drift"), "age")["status"] == "ok"
    _break(warehouse, scenarios.distribution_shift, "age", strength=0.5)
    result = _evaluate(warehouse, spec, "numeric_drift")
    assert result.verdict is Verdict.FAIL and _row(result, "age")["psi"] > 0.2


@pytest.mark.reliability("input")
def test_categorical_drift_fails_on_unseen_categories(built):
    spec, warehouse = built
    _break(warehouse, scenarios.unseen_categories, "employment_type", rate=0.1)
    result = _evaluate(warehouse, spec, "categorical_drift")
    assert result.verdict is Verdict.FAIL
    row = _row(result, "employment_type")
    assert row["unseen_rate"] == pytest.approx(0.1, abs=0.02)
    assert "crypto_exchange" in row["unseen_values"]


def test_categorical_drift_names_an_empty_segment(built):
    spec, warehouse = built
    _break(warehouse, lambda df: df[df["region"] != "coastal"])
    row = _row(_evaluate(warehouse, spec, "categorical_drift"), "region")
    assert row["empty_categories"] == "coastal"
    assert row["status"] == "fail"


def test_categorical_drift_fails_on_a_distribution_shift(built):
    spec, warehouse = built
    _break(warehouse, scenarios.distribution_shift, "home_ownership", strength=1.0)
    assert _evaluate(warehouse, spec, "categorical_drift").verdict is Verdict.FAIL


def _parity(spec):
    return next(g for g in spec.gates if g.name == "training_serving_parity").params


def test_parity_passes_when_serving_used_the_shared_code(built):
    spec, warehouse = built
    result = run_parity(warehouse, spec, _parity(spec))
    assert result.verdict is Verdict.PASS
    assert result.support["requests"] == result.support["recomputed"] > 0


def test_parity_fails_on_training_serving_skew_with_example_rows(make_release, demo):
    skewed = scenarios.training_serving_skew(demo.serving_log, "debt_to_income", rate=0.3)
    spec = make_release(replace(demo, serving_log=skewed))
    warehouse = build_warehouse(spec)
    result = run_parity(warehouse, spec, _parity(spec))
    assert result.verdict is Verdict.FAIL
    row = next(r for r in result.rows if r["column"] == "debt_to_income")
    assert row["mismatch_rate"] == pytest.approx(0.3, abs=0.05)
    assert all(r["status"] == "ok" for r in result.rows if r["column"] != "debt_to_income")
    example = result.examples[0]
    logged = json.loads(
        skewed.set_index("request_id").loc[example["request_id"], "logged_features"]
    )
    assert float(example["logged"]) == pytest.approx(logged["debt_to_income"])


@pytest.mark.reliability("input")
def test_parity_with_duplicate_request_ids_is_inconclusive(make_release, demo):
    log = demo.serving_log.copy()
    log.loc[1, "request_id"] = log.loc[0, "request_id"]
    spec = make_release(replace(demo, serving_log=log))
    warehouse = build_warehouse(spec)
    assert run_parity(warehouse, spec, _parity(spec)).verdict is Verdict.INCONCLUSIVE


@pytest.mark.reliability("input")
def test_an_empty_target_is_inconclusive_never_a_pass(built):
    spec, warehouse = built
    _break(warehouse, lambda df: df.head(0))
    results = run_contract(warehouse, spec, keys.EVALUATION_FEATURES)
    assert _gate(results, "null_rate_threshold").verdict is Verdict.INCONCLUSIVE
    assert all(r.verdict is not Verdict.PASS for r in results if r.gate != "feature_schema")


def _sql_profile(connection, reference, ranges) -> Profile:
    """The target profile as plain SQL aggregates: the definition profile_target must match."""
    dtypes = relation_dtypes(connection, "target", [])
    usable, unavailable = usable_columns({c: p.kind for c, p in reference.columns.items()}, dtypes)
    edges = {c: reference.columns[c].edges for c, kind in usable.items() if kind == "numeric"}
    rows, profiles = column_stats(connection, "target", [], usable, dtypes, ranges, edges=edges)
    categorical = [c for c, kind in usable.items() if kind == "categorical"]
    for column, counts in category_counts(connection, "target", [], categorical).items():
        profiles[column].categories = counts
    return Profile(rows, profiles, unavailable, reference.bins)


def _awkward_frame(rng, n: int) -> pd.DataFrame:
    """Nulls, ±inf, -0.0, values on the bin edges and outside the ranges, huge integers."""
    edgy = rng.choice([0.0, -0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf], n)
    wide = rng.integers(0, 1000, n) * (2**53 + 1)  # beyond 2**53: the DOUBLE cast rounds
    return pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.7, rng.normal(1, 1, n), edgy),
            "clean": rng.uniform(0, 1, n),
            "empty": np.full(n, np.nan),
            "small": pd.array(rng.integers(-3, 40, n), dtype="Int32"),
            "wide": wide,
            "price": rng.integers(0, 10**6, n) / 1000,
            "single": rng.normal(0, 1, n).astype("float32"),
            "kind": pd.array(rng.choice(["a", "b", "c", "d"], n), dtype="string"),
            "gone": rng.normal(0, 1, n),
        }
    ).assign(
        small=lambda df: df["small"].mask(rng.random(n) < 0.1),
        kind=lambda df: df["kind"].mask(rng.random(n) < 0.05),
    )


@pytest.mark.parametrize("rows", [5000, 0])
def test_target_profile_equals_the_sql_aggregates_on_awkward_data(monkeypatch, rows):
    monkeypatch.setattr(target_profile, "BATCH_ROWS", 700)  # several batches, some all-null
    rng = np.random.default_rng(7)
    connection = duckdb.connect()
    frames = {"reference": _awkward_frame(rng, 4000), "target": _awkward_frame(rng, 5000)}
    for name, frame in frames.items():
        connection.register(f"{name}_frame", frame.head(rows) if name == "target" else frame)
        connection.execute(
            f"CREATE TABLE {name} AS SELECT * {'EXCLUDE (gone) ' if name == 'target' else ''}"
            f"REPLACE (CAST(price AS DECIMAL(12, 3)) AS price) FROM {name}_frame"
        )
        # pandas NaN arrive as NULL: put real NaN in, and leave `empty` with no finite value.
        connection.execute(f"UPDATE {name} SET x = 'nan' WHERE rowid % 37 = 0")
        connection.execute(f"UPDATE {name} SET empty = 'nan' WHERE rowid % 2 = 0")
    numeric = ["x", "clean", "empty", "small", "wide", "price", "single"]
    kinds = {c: "numeric" for c in numeric} | {"kind": "categorical", "gone": "numeric"}
    reference = profile_reference(connection, "reference", [], kinds, 10)
    reference.columns["small"].edges = [-3.0, 0.0, 0.5, 4.0, 4.0, 39.0]  # on values, repeated
    reference.columns["x"].edges = [-0.0, 0.5, 1.0, 2.0]
    # Ranges that some values break (counted again) and some that hold (zero from min and max).
    ranges = {"x": (0.0, 2.0), "clean": (0.0, 1.0), "small": (0, 30), "wide": (None, 2.0**60)}
    ranges |= {"price": (1.0, None), "single": (-10.0, 10.0)}
    fast = target_profile.profile_target(connection, "target", [], reference, ranges)
    assert asdict(fast) == asdict(_sql_profile(connection, reference, ranges))
    assert fast.unavailable == {"gone": "column missing"}
    setting = "SELECT current_setting('preserve_insertion_order')"
    assert connection.execute(setting).fetchone() == (True,)  # the stream's setting is undone
    if rows:  # both exact methods ran: by value for `small`, streamed for the others
        routed = target_profile._small_integer_columns(
            connection, "target", [], numeric, relation_dtypes(connection, "target", [])
        )
        assert routed == ["small"]
        assert fast.columns["x"].nonfinite > 0 and fast.columns["x"].out_of_range > 0
        assert fast.columns["empty"].nonnull > 0 and fast.columns["empty"].min is None
        assert fast.columns["small"].out_of_range > 0 and fast.columns["clean"].out_of_range == 0


def test_reference_edges_are_the_same_every_time():
    # approx_quantile on several threads merges their states in a varying order; the reference
    # profile computes its edges on one thread, so PSI bins do not move between recomputations.
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    rng = np.random.default_rng(3)
    connection.register("frame", pd.DataFrame({"x": rng.lognormal(size=600_000)}))
    connection.execute("CREATE TABLE reference AS SELECT * FROM frame")
    edges = {
        tuple(
            profile_reference(connection, "reference", [], {"x": "numeric"}, 10).columns["x"].edges
        )
        for _ in range(4)
    }
    assert len(edges) == 1
    assert connection.execute("SELECT current_setting('threads')").fetchone() == (2,)
