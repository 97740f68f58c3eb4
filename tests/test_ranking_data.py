"""Reading ranking data: query column, graded relevance and query-level segments."""

import numpy as np
import pytest

from ml_release import keys
from ml_release.demo.ranking.generate import generate
from ml_release.errors import DataInputError
from ml_release.evaluation.ranking_data import QUERY, ranking_rows
from ml_release.spec import load_spec
from ml_release.training import train_candidate
from ml_release.warehouse import Warehouse
from tests.test_ranking_spec import EXAMPLE


@pytest.fixture()
def holdout():
    return generate(seed=3, n_training=5, n_evaluation=30, n_serving=2).evaluation


def _rows(tmp_path, frame):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=10)
    warehouse.replace_from_frame(keys.EVALUATION_HOLDOUT, frame)
    return ranking_rows(warehouse, load_spec(EXAMPLE))


def test_rows_carry_query_relevance_and_segments(tmp_path, holdout):
    rows = _rows(tmp_path, holdout)
    assert len(rows) == len(holdout) and rows[QUERY].nunique() == 30
    assert 10 <= rows.groupby(QUERY).size().min() and rows.groupby(QUERY).size().max() <= 50
    assert set(rows["label"]) <= {0.0, 1.0, 2.0, 3.0}
    assert (rows.groupby(QUERY)["segment__market"].nunique() == 1).all()
    assert list(rows["row_id"]) == sorted(rows["row_id"])  # ties break by row id


def test_missing_query_column_names_it(tmp_path, holdout):
    with pytest.raises(DataInputError, match=r"data\.query_column: column 'query_id' is not in"):
        _rows(tmp_path, holdout.drop(columns=["query_id"]))


def test_negative_relevance_is_refused_with_row_ids(tmp_path, holdout):
    holdout.loc[4, "relevance"] = -1
    with pytest.raises(
        DataInputError, match=r"relevance >= 0 for model\.task ranking; 1 row\(s\)"
    ) as caught:
        _rows(tmp_path, holdout)
    assert str(holdout.loc[4, "doc_id"]) in str(caught.value)


def test_segment_varying_within_a_query_is_refused(tmp_path, holdout):
    first = holdout.index[holdout["query_id"] == holdout["query_id"].iloc[0]]
    holdout.loc[first[:1], "market"] = np.where(holdout.loc[first[0], "market"] == "us", "uk", "us")
    with pytest.raises(DataInputError, match="'market' takes several values within 1 queries"):
        _rows(tmp_path, holdout)


def test_training_snapshot_without_query_column_names_it_and_the_fix(tmp_path):
    spec = load_spec(EXAMPLE)
    training = generate(seed=3, n_training=12, n_evaluation=2, n_serving=2).training
    path = tmp_path / "training_snapshot.parquet"
    training.to_parquet(path, index=False)
    source = spec.data.training.model_copy(update={"path": str(path)})
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"training": source})})
    _, metrics = train_candidate(spec)
    assert metrics["validation_queries"] >= 1

    training.drop(columns=["query_id"]).to_parquet(path, index=False)
    with pytest.raises(DataInputError) as caught:  # not DuckDB's binder error
        train_candidate(spec)
    message = str(caught.value)
    assert "training_snapshot: " in message and "has no column 'query_id'" in message
    assert "training_snapshot.parquet" in message and "Fix: export the column" in message
