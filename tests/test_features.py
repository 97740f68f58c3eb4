"""The shared feature code and its application to warehouse datasets."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml_release import keys
from ml_release.demo import scenarios
from ml_release.demo.features import compute_features
from ml_release.errors import DataInputError
from tests.conftest import build_warehouse, read_table


def test_batched_tables_equal_direct_computation(built, demo):
    _, warehouse = built
    table = read_table(warehouse, keys.EVALUATION_FEATURES).set_index("customer_id")
    direct = compute_features(demo.evaluation).set_index(demo.evaluation["customer_id"])
    pd.testing.assert_frame_equal(
        table[direct.columns].sort_index(), direct.sort_index(), check_dtype=False
    )


def test_serving_features_recomputed_from_raw_requests(built, demo):
    _, warehouse = built
    table = read_table(warehouse, keys.SERVING_FEATURES_RECOMPUTED).set_index("request_id")
    first = demo.serving_log.iloc[0]
    logged = json.loads(first["logged_features"])
    row = table.loc[first["request_id"]]
    assert row["log_income"] == pytest.approx(logged["log_income"])
    assert row["channel"] == logged["channel"]


def _features_column_by_column(raw: pd.DataFrame) -> pd.DataFrame:
    """The demo features written plainly in pandas: the oracle of the single-row version."""
    from ml_release.demo.features import CATEGORICAL

    income = raw["annual_income"].astype("float64")
    limit = raw["credit_limit"].astype("float64")
    out = pd.DataFrame(index=raw.index)
    out["age"] = raw["age"].astype("float64")
    out["log_income"] = np.log1p(income.clip(lower=0))
    out["debt_to_income"] = raw["loan_amount"].astype("float64") / income.where(income > 0)
    out["utilization"] = (raw["balance"].astype("float64") / limit.where(limit > 0)).clip(0, 5)
    out["num_late_payments"] = raw["num_late_payments"].astype("float64")
    out["months_employed"] = raw["months_employed"].astype("float64")
    out["log_loan_amount"] = np.log1p(raw["loan_amount"].astype("float64").clip(lower=0))
    for column in CATEGORICAL:
        values = raw[column]
        out[column] = (
            values.astype("string").str.strip().str.lower().astype(object).where(values.notna())
        )
    return out


def test_features_equal_the_plain_pandas_version_on_every_table_and_edge_case(demo):
    from ml_release.demo.features import REQUIRED_COLUMNS

    for table in (demo.training, demo.evaluation):
        raw = table[list(REQUIRED_COLUMNS)]
        pd.testing.assert_frame_equal(compute_features(raw), _features_column_by_column(raw))
    edge = pd.DataFrame(
        {
            "age": pd.array([30, None, 25], dtype="Int64"),
            "annual_income": [0.0, -5.0, np.nan],
            "loan_amount": [100.0, -1.0, None],
            "credit_limit": [0.0, 10.0, np.nan],
            "balance": [5.0, 100.0, 1.0],
            "num_late_payments": pd.array([1, None, 0], dtype="Int64"),
            "months_employed": pd.array([1, 2, None], dtype="Int64"),
            "employment_type": [" Salaried ", None, np.nan],
            "home_ownership": ["RENT", pd.NA, "own"],
            "region": [3, "x", "Y "],
            "channel": ["Mobile ", "MOBILE", None],
            "postal_district": ["a", "b", "c"],
        },
        index=[7, 3, 5],
    )
    pd.testing.assert_frame_equal(compute_features(edge), _features_column_by_column(edge))
    # A batch (spelled out per distinct value) and one request (a plain loop) agree.
    batch = pd.concat([edge] * 20, ignore_index=True)
    pd.testing.assert_frame_equal(compute_features(batch), _features_column_by_column(batch))


@pytest.mark.reliability("input")
def test_category_spelling_variants_map_to_one_value():
    raw = pd.DataFrame(
        {
            c: [1.0, 1.0, 1.0]
            for c in [
                "age",
                "annual_income",
                "loan_amount",
                "credit_limit",
                "balance",
                "num_late_payments",
                "months_employed",
            ]
        }
    )
    for c in ["employment_type", "home_ownership", "region", "postal_district"]:
        raw[c] = "x"
    raw["channel"] = ["Mobile ", "MOBILE", "mobile"]
    assert compute_features(raw)["channel"].tolist() == ["mobile"] * 3


@pytest.mark.reliability("input")
def test_renamed_raw_column_is_a_clear_error(make_release, demo):
    spec = make_release(
        replace(
            demo,
            evaluation=scenarios.rename_column(demo.evaluation, "annual_income", "annual_incme"),
        )
    )
    with pytest.raises(DataInputError) as caught:
        build_warehouse(spec)
    message = str(caught.value)
    assert "evaluation_holdout" in message and "evaluation_holdout.parquet" in message
    assert "'annual_income' is missing" in message and "'annual_incme'" in message


@pytest.mark.reliability("input")
def test_numbers_sent_as_strings_is_a_clear_error(make_release, demo):
    spec = make_release(replace(demo, evaluation=scenarios.change_dtype(demo.evaluation, "age")))
    with pytest.raises(DataInputError, match="'age' must be numeric but is VARCHAR"):
        build_warehouse(spec)


def test_feature_code_keeps_nulls_visible(make_release, demo):
    spec = make_release(
        replace(demo, evaluation=scenarios.null_flood(demo.evaluation, "annual_income", rate=0.5))
    )
    warehouse = build_warehouse(spec)
    features = read_table(warehouse, keys.EVALUATION_FEATURES)
    assert features["log_income"].isna().mean() == pytest.approx(0.5, abs=0.05)
    assert np.isfinite(features["age"]).all()


def test_feature_code_version_follows_the_source_file():
    import hashlib
    from pathlib import Path

    from ml_release.demo import features
    from ml_release.feature_code import load_feature_code

    expected = hashlib.sha256(Path(features.__file__).read_bytes()).hexdigest()[:12]
    assert load_feature_code("ml_release.demo.features").version == expected


def _evaluation_rows(spec, warehouse) -> pd.DataFrame:
    from ml_release.scoring import evaluation_rows

    return evaluation_rows(warehouse, spec)


def test_evaluation_rows_take_their_segments_from_the_feature_code(built, demo):
    spec, warehouse = built
    rows = _evaluation_rows(spec, warehouse)
    holdout = rows[rows["eval_set"] == "holdout"].set_index("row_id")
    expected = compute_features(demo.evaluation).set_index(demo.evaluation["customer_id"])
    expected.index = expected.index.astype(str)
    for segment in spec.data.segments:  # lower-cased and stripped by the feature code
        got = holdout[f"segment__{segment}"]
        assert got.equals(expected.loc[got.index, segment].astype(str).rename(got.name))
    served = rows[rows["eval_set"] == "serving"]
    assert len(served) and set(served["segment__channel"]) <= set(expected["channel"].astype(str))


def test_evaluation_rows_refuse_features_of_another_load_of_the_data(built, demo, tmp_path):
    from ml_release.featurize import build_features
    from ml_release.sources import load_source

    spec, warehouse = built
    # A new export of the holdout is loaded, its features are not computed again.
    changed = demo.evaluation.assign(region=demo.evaluation["region"].iloc[::-1].to_numpy())
    path = tmp_path / "new_holdout.parquet"
    changed.to_parquet(path)
    source = spec.source_for(keys.EVALUATION_HOLDOUT).model_copy(update={"path": str(path)})
    load_source(warehouse, source, keys.EVALUATION_HOLDOUT)
    with pytest.raises(DataInputError, match="evaluation_features was computed from another load"):
        _evaluation_rows(spec, warehouse)
    build_features(warehouse, spec, keys.EVALUATION_FEATURES)  # what a run does
    rows = _evaluation_rows(spec, warehouse)
    holdout = rows[rows["eval_set"] == "holdout"].set_index("row_id")
    region = compute_features(changed).set_index(changed["customer_id"].astype(str))["region"]
    assert holdout["segment__region"].equals(region.loc[holdout.index].rename("segment__region"))


def test_evaluation_rows_refuse_a_feature_table_out_of_row_order(built, demo):
    from tests.conftest import replace_table

    spec, warehouse = built
    features = read_table(warehouse, keys.SERVING_FEATURES_RECOMPUTED)
    replace_table(warehouse, keys.SERVING_FEATURES_RECOMPUTED, features.iloc[::-1])
    with pytest.raises(DataInputError, match="does not hold serving_log's rows in order"):
        _evaluation_rows(spec, warehouse)


def _edit_requests(log: pd.DataFrame, edit) -> pd.DataFrame:
    """The serving log with `edit(position, request)` applied to each logged request."""
    requests = [json.loads(text) for text in log["request"]]
    for position, request in enumerate(requests):
        edit(position, request)
    return log.assign(request=[json.dumps(request) for request in requests])


def test_evaluation_rows_read_the_stored_requests_back_as_parsing_them_gives(
    make_release, demo, monkeypatch
):
    """The serving features keep the request fields they parsed; the evaluation rows read them
    back equal to parsing every request again, values, nulls and types (in batches of 97 rows,
    some with a null in `age` and some without)."""
    from ml_release import featurize

    def edit(position: int, request: dict) -> None:
        if position % 150 == 0:
            request["age"] = None
        if position % 11 == 0:
            request["channel"] = None

    spec = make_release(replace(demo, serving_log=_edit_requests(demo.serving_log, edit)))
    monkeypatch.setattr(featurize, "BATCH_ROWS", 97)
    warehouse = build_warehouse(spec)
    assert warehouse.exists(featurize.REQUESTS_TABLE)
    stored = _evaluation_rows(spec, warehouse)
    with warehouse.connect() as connection:
        connection.execute(f"DROP TABLE {featurize.REQUESTS_TABLE}")
    parsed = _evaluation_rows(spec, warehouse)
    pd.testing.assert_frame_equal(stored, parsed)
    served = stored[stored["eval_set"] == "serving"]
    assert served["age"].isna().any() and served["channel"].isna().any()


def test_requests_whose_field_types_differ_are_parsed_again(built, demo, tmp_path):
    """A categorical field holding numbers in some requests and text in others has no single
    column type: the serving features leave no stored requests (the previous load's go too),
    and the evaluation rows parse the requests, the numbers as the model would see them."""
    from ml_release.featurize import REQUESTS_TABLE, build_features
    from ml_release.sources import load_source

    spec, warehouse = built
    assert warehouse.exists(REQUESTS_TABLE)

    def edit(position: int, request: dict) -> None:
        if position % 5 == 0:
            request["region"] = 3

    path = tmp_path / "mixed_serving_log.parquet"
    _edit_requests(demo.serving_log, edit).to_parquet(path)
    source = spec.source_for(keys.SERVING_LOG).model_copy(update={"path": str(path)})
    load_source(warehouse, source, keys.SERVING_LOG)
    build_features(warehouse, spec, keys.SERVING_FEATURES_RECOMPUTED)
    assert not warehouse.exists(REQUESTS_TABLE)
    served = _evaluation_rows(spec, warehouse).query("eval_set == 'serving'")
    edited = demo.serving_log["request_id"].iloc[::5]
    numbers = served[served["row_id"].isin(edited)]
    assert len(numbers) and (numbers["region"] == 3).all()
    texts = served.loc[~served["row_id"].isin(edited), "region"]
    assert texts.map(lambda value: isinstance(value, str)).all()
