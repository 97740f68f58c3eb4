"""The embedded warehouse: datasets, features and evaluation tables in one DuckDB file."""

from typing import TYPE_CHECKING

from ml_release.dbfile import DuckDBFile, one
from ml_release.identifiers import quote

if TYPE_CHECKING:
    import pandas as pd


class Warehouse(DuckDBFile):
    """Access to `warehouse.duckdb` for every step of a release."""

    repair_hint = (
        "The warehouse holds only what releases load and compute: delete the file (and its "
        ".wal) and run the release again; it is rebuilt from the sources."
    )

    def exists(self, table: str) -> bool:
        """True when `table` is in the warehouse."""
        if not self.path.exists():
            return False
        with self.connect() as connection:
            found = one(
                connection,
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_name = ?",
                [table],
            )
        return bool(found[0])

    def columns(self, table: str) -> dict[str, str]:
        """Column name → DuckDB type of `table`, in table order."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
        return {name: dtype for name, dtype in rows}

    def row_count(self, table: str) -> int:
        """Number of rows of `table`."""
        with self.connect() as connection:
            return int(one(connection, f"SELECT count(*) FROM {quote(table)}")[0])

    def replace_from_frame(self, table: str, frame: "pd.DataFrame") -> int:
        """Atomically replace `table` with a DataFrame's rows; returns the row count."""
        with self.transaction() as connection:
            connection.register("incoming_frame", frame)
            connection.execute(
                f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT * FROM incoming_frame"
            )
            connection.unregister("incoming_frame")
        return len(frame)

    def frame(self, sql: str, params: list | None = None) -> "pd.DataFrame":
        """A query's result as a DataFrame."""
        with self.connect() as connection:
            return connection.execute(sql, params or []).df()
