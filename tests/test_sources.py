"""Reading sources: every broken file is a DataInputError naming the file, never a traceback."""

import pandas as pd
import pytest

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.home import warehouse_path
from ml_release.sources import check_source, load_source
from ml_release.spec import SourceSpec
from ml_release.warehouse import Warehouse


@pytest.fixture()
def warehouse(home):
    return Warehouse(warehouse_path(), lock_timeout=5)


def _load(warehouse, path, **kw):
    return load_source(warehouse, SourceSpec(path=str(path), **kw), keys.EVALUATION_HOLDOUT)


def test_parquet_loads(warehouse, tmp_path, demo):
    path = tmp_path / "ok.parquet"
    demo.evaluation.to_parquet(path)
    assert _load(warehouse, path) == len(demo.evaluation)
    assert warehouse.row_count(keys.EVALUATION_HOLDOUT) == len(demo.evaluation)


def test_csv_loads(warehouse, tmp_path, demo):
    path = tmp_path / "ok.csv"
    demo.evaluation.head(50).to_csv(path, index=False)
    assert _load(warehouse, path) == 50


def test_duckdb_table_loads(warehouse, tmp_path, demo):
    import duckdb

    db = tmp_path / "source.duckdb"
    with duckdb.connect(str(db)) as connection:
        connection.register("frame", demo.evaluation.head(20))
        connection.execute("CREATE TABLE holdout AS SELECT * FROM frame")
    source = SourceSpec(duckdb=str(db), table="holdout")
    assert load_source(warehouse, source, keys.EVALUATION_HOLDOUT) == 20


def test_a_failed_duckdb_source_leaves_nothing_attached(warehouse, tmp_path, demo):
    """The process's files share one DuckDB database (`ml_release.dbfile`): a DuckDB source is
    attached to it for the load only, and a load that fails (no rows) detaches it too, so the
    source loads again and nothing stays attached once the warehouse is closed."""
    import duckdb

    from ml_release.dbfile import _OpenFiles

    db = tmp_path / "source.duckdb"
    with duckdb.connect(str(db)) as connection:
        connection.register("frame", demo.evaluation.head(20))
        connection.execute("CREATE TABLE holdout AS SELECT * FROM frame")
        connection.execute("CREATE TABLE empty AS SELECT * FROM frame LIMIT 0")
    for table, rows in (("empty", 0), ("holdout", 20), ("empty", 0), ("holdout", 20)):
        source = SourceSpec(duckdb=str(db), table=table)
        if rows:
            assert load_source(warehouse, source, keys.EVALUATION_HOLDOUT) == rows
        else:
            with pytest.raises(DataInputError, match="no rows"):
                load_source(warehouse, source, keys.EVALUATION_HOLDOUT)
    assert not _OpenFiles._open
    with duckdb.connect(str(db)) as connection:  # no longer open in this process
        assert connection.execute("SELECT count(*) FROM holdout").fetchall() == [(20,)]


@pytest.mark.reliability("input")
def test_missing_file(warehouse, tmp_path):
    with pytest.raises(DataInputError, match=r"not found.*missing.parquet"):
        _load(warehouse, tmp_path / "missing.parquet")


def test_missing_file_hint_names_the_tasks_demo_data(tmp_path):
    source = SourceSpec(path=str(tmp_path / "missing.parquet"))
    with pytest.raises(DataInputError, match=r"`ml-release demo-data`\.$"):
        check_source(source, keys.EVALUATION_HOLDOUT)
    with pytest.raises(DataInputError, match=r"`ml-release demo-data --task ranking`\.$"):
        check_source(source, keys.EVALUATION_HOLDOUT, task="ranking")


@pytest.mark.reliability("input")
def test_zero_byte_file(warehouse, tmp_path):
    path = tmp_path / "empty.parquet"
    path.touch()
    with pytest.raises(DataInputError, match=r"empty.parquet is empty"):
        _load(warehouse, path)


@pytest.mark.reliability("input")
def test_header_only_parquet(warehouse, tmp_path, demo):
    path = tmp_path / "header.parquet"
    demo.evaluation.head(0).to_parquet(path)
    with pytest.raises(DataInputError, match=r"no rows"):
        _load(warehouse, path)
    assert not warehouse.exists(keys.EVALUATION_HOLDOUT)  # nothing partial left behind


@pytest.mark.reliability("input")
def test_truncated_parquet(warehouse, tmp_path, demo):
    path = tmp_path / "cut.parquet"
    demo.evaluation.to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataInputError, match=r"truncated"):
        _load(warehouse, path)


@pytest.mark.reliability("input")
def test_corrupt_parquet_body(warehouse, tmp_path, demo):
    path = tmp_path / "corrupt.parquet"
    demo.evaluation.to_parquet(path)
    data = bytearray(path.read_bytes())
    data[100:2000] = b"\x00" * 1900
    path.write_bytes(bytes(data))
    with pytest.raises(DataInputError, match=r"corrupt.parquet"):
        _load(warehouse, path)


@pytest.mark.reliability("input")
def test_csv_named_parquet(warehouse, tmp_path, demo):
    path = tmp_path / "really_csv.parquet"
    demo.evaluation.head(10).to_csv(path, index=False)
    with pytest.raises(DataInputError, match=r"not a Parquet file.*rename it to .csv"):
        _load(warehouse, path)


@pytest.mark.reliability("fault")
def test_existing_table_survives_a_failed_load(warehouse, tmp_path, demo):
    good = tmp_path / "good.parquet"
    demo.evaluation.to_parquet(good)
    _load(warehouse, good)
    header = tmp_path / "header.parquet"
    pd.DataFrame(columns=demo.evaluation.columns).to_parquet(header)
    with pytest.raises(DataInputError):
        _load(warehouse, header)
    assert warehouse.row_count(keys.EVALUATION_HOLDOUT) == len(demo.evaluation)
