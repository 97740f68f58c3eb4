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


def test_partial_files_of_dead_processes_are_cleaned_at_the_next_start(home):
    import os
    import time

    from ml_release.home import STALE_TEMP_SECONDS, _host, temp_dir, temp_file

    folder = temp_dir()
    dead = folder / f"training_features.{_host()}.999999999.parquet.partial"
    dead.write_bytes(b"half a file")
    mine = temp_file("evaluation_features", "parquet")
    mine.write_bytes(b"in progress")
    # Another host's file on a shared volume: its process cannot be seen from here, so it is
    # left alone until it is old, whatever its PID means on this host.
    other = folder / "serving_features.other-host.999999999.parquet.partial"
    other.write_bytes(b"in progress elsewhere")
    stale = folder / "serving_features.other-host.1.parquet.partial"
    stale.write_bytes(b"abandoned elsewhere")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    temp_dir()
    assert not dead.exists() and not stale.exists()
    assert mine.exists()  # a live process's staging file is left alone
    assert other.exists()


def test_feature_code_version_follows_the_source_file():
    import hashlib
    from pathlib import Path

    from ml_release.demo import features
    from ml_release.feature_code import load_feature_code

    expected = hashlib.sha256(Path(features.__file__).read_bytes()).hexdigest()[:12]
    assert load_feature_code("ml_release.demo.features").version == expected
