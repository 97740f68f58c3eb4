"""`ml-release validate` reads what it validates: rows, needed columns, labels, requests.

Each case is a source that `validate` used to call valid and `run` then failed on (or, for the
logged requests, scored silently as nulls). Every message names the dataset, the file, the
column or field, and the fix, and is the message `run` gives.
"""

import json
import random
from dataclasses import replace

import pandas as pd
import pytest

from ml_release import keys
from ml_release.cli import main
from ml_release.demo import scenarios
from ml_release.errors import DataInputError
from ml_release.feature_code import load_feature_code
from ml_release.featurize import REQUESTS_TABLE, build_features
from ml_release.request_fields import RequestFieldCheck
from ml_release.scoring import evaluation_rows
from ml_release.shadow.replay import load_window
from ml_release.spec import load_spec
from tests.conftest import replace_table, spec_dict, write_spec


def _validate(spec, capsys) -> tuple[int, str]:
    code = main(["--spec", str(spec.source), "validate"])
    return code, " ".join(capsys.readouterr().out.split())  # unwrap the console's lines


def _requests(log: pd.DataFrame, edit, every: int = 1) -> pd.DataFrame:
    """The serving log with `edit` applied to the parsed request of every `every`-th row."""
    texts = [
        json.dumps(edit(json.loads(text))) if i % every == 0 else text
        for i, text in enumerate(log["request"])
    ]
    return log.assign(request=texts)


def _renamed(request: dict) -> dict:
    request["annual_incme"] = request.pop("annual_income")
    return request


def test_a_healthy_source_set_is_valid_and_its_rows_are_counted(make_release, demo, capsys):
    code, out = _validate(make_release(), capsys)
    assert code == 0, out
    assert f"evaluation_holdout: {len(demo.evaluation):,} rows" in out and "valid" in out


def test_a_zero_row_parquet_is_not_valid(make_release, demo, capsys):
    spec = make_release(replace(demo, training=demo.training.head(0)))
    code, out = _validate(spec, capsys)
    assert code == 2
    assert "training_snapshot" in out and "has columns but no rows" in out


def test_a_header_only_csv_is_not_valid(make_release, home, demo, tmp_path, capsys):
    data = spec_dict()
    csv = tmp_path / "holdout.csv"
    demo.evaluation.head(0).to_csv(csv, index=False)
    data["data"]["evaluation"] = {"path": str(csv)}
    make_release()
    spec = load_spec(write_spec(tmp_path, data))
    code, out = _validate(spec, capsys)
    assert code == 2 and "evaluation_holdout" in out and "has columns but no rows" in out


def test_a_truncated_parquet_with_an_intact_footer_is_not_valid(make_release, home, capsys):
    spec = make_release()
    path = home / "demo" / "serving_log.parquet"
    body = path.read_bytes()
    # Cut out the middle: the footer (and its length and magic) stay, the pages it points to go.
    third = len(body) // 3
    path.write_bytes(body[:third] + body[2 * third :])
    code, out = _validate(spec, capsys)
    assert code == 2
    assert "serving_log" in out and "cannot be read as parquet" in out and "re-export" in out


def test_a_missing_label_is_named_with_its_key(make_release, demo, capsys):
    spec = make_release(replace(demo, evaluation=demo.evaluation.drop(columns=["defaulted"])))
    code, out = _validate(spec, capsys)
    assert code == 2
    assert "column 'defaulted' (data.label) is missing" in out and "evaluation_holdout" in out


def test_a_renamed_raw_column_gets_the_message_run_gives(make_release, demo, capsys):
    broken = scenarios.rename_column(demo.evaluation, "annual_income", "annual_incme")
    spec = make_release(replace(demo, evaluation=broken))
    code, out = _validate(spec, capsys)
    assert code == 2
    # The feature step's message in `run` (tests/test_cli.py), word for word.
    assert "does not have the raw columns the feature code needs" in out
    assert "column 'annual_income' is missing. Did you mean 'annual_incme'?" in out


def test_label_values_outside_the_task_are_not_valid(make_release, demo, capsys):
    holdout = demo.evaluation.copy()
    holdout.loc[holdout.index[:3], "defaulted"] = 2
    code, out = _validate(make_release(replace(demo, evaluation=holdout)), capsys)
    assert code == 2
    assert "label 'defaulted' must be 0 or 1 for model.task binary_classification" in out
    assert "3 row(s)" in out


def test_unlabelled_holdout_rows_are_not_valid(make_release, demo, capsys):
    holdout = demo.evaluation.astype({"defaulted": "Int64"})
    holdout.loc[holdout.index[:4], "defaulted"] = pd.NA
    code, out = _validate(make_release(replace(demo, evaluation=holdout)), capsys)
    assert code == 2 and "4 row(s)" in out and "have no label 'defaulted'" in out


def test_a_serving_gate_needs_labelled_requests(make_release, demo, capsys):
    log = demo.serving_log.assign(defaulted=pd.array([pd.NA] * len(demo.serving_log), "Int64"))
    code, out = _validate(make_release(replace(demo, serving_log=log)), capsys)
    assert code == 2
    assert "roc_auc_vs_baseline_serving" in out and "no labelled rows" in out


def _without_parity(data: dict) -> dict:
    data["gates"] = [g for g in data["gates"] if g["name"] != "training_serving_parity"]
    return data


def test_serving_log_columns_are_required_only_when_a_listed_gate_reads_them(
    make_release, demo, tmp_path, capsys
):
    log = demo.serving_log.drop(columns=["logged_features", "latency_ms", "prediction"])
    spec = make_release(replace(demo, serving_log=log))
    code, out = _validate(spec, capsys)
    assert code == 2  # the parity gate reads the logged features
    assert "column 'logged_features' (data.serving_log.logged_features_column, read by " in out
    assert "training_serving_parity) is missing" in out
    lean = load_spec(write_spec(tmp_path, _without_parity(spec_dict())))
    code, out = _validate(lean, capsys)
    assert code == 0, out  # no gate reads latency, the logged answer or the logged features


def test_shadow_reads_a_log_without_latency_or_logged_answers(built):
    spec, warehouse = built
    with warehouse.connect() as connection:
        log = connection.sql(f'SELECT * FROM "{keys.SERVING_LOG}"').df()
    replace_table(warehouse, keys.SERVING_LOG, log.drop(columns=["latency_ms", "prediction"]))
    window = load_window(warehouse, spec, load_feature_code(spec.features.code).required_columns)
    assert len(window) == spec.shadow.requests
    assert pd.isna(window.logged_latency_ms).all() and pd.isna(window.logged_score).all()


@pytest.mark.parametrize(
    ("edit", "every", "expected"),
    [
        (_renamed, 1, "field 'annual_income' is missing from"),
        (_renamed, 7, "Did you mean 'annual_incme'?"),
        (lambda r: {**r, "age": str(r["age"])}, 3, "field 'age' must be a number"),
        (lambda r: {**r, "coupon": "x"}, 5, "field 'coupon' is not expected"),
        (lambda r: {k: v for k, v in r.items() if k != "channel"}, 9, "field 'channel' is"),
    ],
    ids=["renamed", "renamed in some", "mistyped", "extra", "missing in some"],
)
def test_the_logged_request_is_part_of_the_contract(built, demo, edit, every, expected):
    """A damaged request field is an error before anything is scored, never nulls."""
    spec, warehouse = built
    broken = _requests(demo.serving_log, edit, every)
    replace_table(warehouse, keys.SERVING_LOG, broken)
    # The table was swapped behind the loader's back: the requests the serving features kept
    # are of the healthy log (a load would make the features stale, and evaluation_rows would
    # refuse them), so evaluation_rows parses these requests.
    with warehouse.connect() as connection:
        connection.execute(f"DROP TABLE {REQUESTS_TABLE}")
    contract = load_feature_code(spec.features.code).required_columns
    for read in (
        lambda: build_features(warehouse, spec, keys.SERVING_FEATURES_RECOMPUTED),
        lambda: evaluation_rows(warehouse, spec),
        lambda: load_window(warehouse, spec, contract),  # shadow replay and canaries
    ):
        with pytest.raises(DataInputError) as caught:
            read()
        message = " ".join(str(caught.value).split())
        assert expected in message and "serving_log.request" in message
        assert "request req-" in message  # names the requests


def test_validate_checks_the_logged_requests(make_release, demo, capsys):
    log = _requests(demo.serving_log, _renamed, every=4)
    code, out = _validate(make_release(replace(demo, serving_log=log)), capsys)
    assert code == 2
    assert "field 'annual_income' is missing from 500 of 2,000 requests" in out
    assert "Did you mean 'annual_incme'?" in out


def test_fields_production_sends_may_be_listed(make_release, demo, tmp_path, capsys):
    log = _requests(demo.serving_log, lambda r: {**r, "coupon": "x"})
    make_release(replace(demo, serving_log=log))
    data = spec_dict()
    data["data"]["serving_log"]["request_extra_fields"] = ["coupon"]
    code, out = _validate(load_spec(write_spec(tmp_path, data)), capsys)
    assert code == 0, out


def test_run_names_a_missing_gate_column_as_validate_does(make_release, demo, capsys):
    spec = make_release(
        replace(demo, serving_log=demo.serving_log.drop(columns=["logged_features"]))
    )
    code, validated = _validate(spec, capsys)
    assert code == 2
    assert main(["--spec", str(spec.source), "run"]) == 2
    ran = " ".join(capsys.readouterr().out.split())
    line = "column 'logged_features' (data.serving_log.logged_features_column, read by"
    assert line in validated and line in ran  # refused before a candidate is registered
    assert "candidate:" not in ran


def _damaged_batch(rng: random.Random, size: int) -> tuple[list[str], list[object]]:
    """Requests with one damage each, now and then: the fast path must not pass any of them."""
    values: list[object] = [None, 1, 2.5, "x", True, [1], {"a": 1}, -0.0, 10**30]
    ids, texts = [], []
    for i in range(size):
        request: object = {"n": rng.choice([1, 2.5, None]), "c": rng.choice(["a", 3, None])}
        damage = rng.random()
        if damage < 0.1:
            request["n"] = rng.choice(values)
        elif damage < 0.2:
            request["c"] = rng.choice(values)
        elif damage < 0.25:
            del request[rng.choice(["n", "c"])]
        elif damage < 0.3:
            request[rng.choice(["extra", "id", "nn"])] = 1
        elif damage < 0.33:
            request = rng.choice([None, [1, 2], "text", 5])
        ids.append(f"r{i}")
        texts.append(None if damage > 0.995 else "{bad" if damage > 0.99 else json.dumps(request))
    return ids, texts


@pytest.mark.parametrize("seed", range(40))
def test_the_request_check_finds_what_a_row_by_row_check_finds(seed):
    """Batches are checked column-wise first; only a clean batch may skip the row-by-row walk."""
    rng = random.Random(seed)
    required = {"n": "numeric", "c": "categorical"}
    fast, reference = RequestFieldCheck(required, ["id"]), RequestFieldCheck(required, ["id"])
    for _ in range(3):
        ids, texts = _damaged_batch(rng, rng.choice([1, 5, 40]))
        fast.add(ids, texts)
        for request_id, text in zip(ids, texts, strict=True):
            reference._add_one(request_id, json.loads(text) if _is_json(text) else None)
    assert fast.problems() == reference.problems()
    assert fast.requests == reference.requests


def _is_json(text: object) -> bool:
    try:
        json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def test_a_clean_batch_has_no_problem():
    check = RequestFieldCheck({"n": "numeric", "c": "categorical"}, ["id"])
    check.add(["a", "b"], ['{"n": 1, "c": "x", "id": 3}', '{"n": null, "c": true}'])
    assert check.problems() == [] and check.requests == 2
