"""The data part of the release spec: where each dataset comes from, and shared helpers.

Holds the spec's model base class, identifier validation and "did you mean" suggestions, so
`spec.py` can stay about the release as a whole.
"""

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ml_release.home import HOME_ENV
from ml_release.identifiers import check_identifier

HOME_PLACEHOLDER = "${" + HOME_ENV + "}"


class SpecModel(BaseModel):
    """Base of every spec section: unknown keys and non-finite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def identifier_field(value: str) -> str:
    """Field validator: the value must be a safe identifier."""
    return check_identifier(value)


def close_matches(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """A ' Did you mean ...?' suffix, or '' when nothing is close."""
    found = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(m) for m in found)}?" if found else ""


class SourceSpec(SpecModel):
    """Where a dataset comes from: a Parquet/CSV file, or a table in a DuckDB file."""

    path: str | None = Field(None, description="Parquet or CSV file.")
    duckdb: str | None = Field(None, description="DuckDB database file holding `table`.")
    table: str | None = Field(None, description="Table in `duckdb`.")
    format: Literal["parquet", "csv"] | None = Field(
        None, description="File format; inferred from the extension when omitted."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceSpec":
        if (self.path is None) == (self.duckdb is None):
            raise ValueError("give either `path` (Parquet/CSV) or `duckdb` with `table`")
        if self.duckdb is not None and self.table is None:
            raise ValueError("`duckdb` needs `table`: the table to read from that database")
        if self.table is not None:
            check_identifier(self.table)
        if self.path is not None and self.format is None:
            suffix = Path(self.path).suffix.lower()
            if suffix not in (".parquet", ".csv"):
                raise ValueError(f"cannot infer the format of {self.path!r}: set `format`")
        return self

    @property
    def file_format(self) -> str:
        """The declared or inferred format of a file source."""
        return self.format or Path(self.path or "").suffix.lower().lstrip(".")

    def resolved(self, base: Path, home: Path) -> "SourceSpec":
        """A copy with `${ML_RELEASE_HOME}` expanded and relative paths made absolute."""

        def fix(value: str | None) -> str | None:
            if value is None:
                return None
            path = Path(value.replace(HOME_PLACEHOLDER, str(home)))
            return str(path if path.is_absolute() else (base / path).resolve())

        return self.model_copy(update={"path": fix(self.path), "duckdb": fix(self.duckdb)})

    def describe(self) -> str:
        """Where the data comes from, for error messages."""
        return self.path or f"{self.duckdb} (table {self.table})"


class ServingLogSpec(SourceSpec):
    """The serving request log: raw requests, logged features and production answers."""

    request_id_column: str = "request_id"
    request_column: str = Field("request", description="Raw request payload (JSON text).")
    logged_features_column: str = Field(
        "logged_features", description="Features the serving path computed (JSON text)."
    )
    prediction_column: str = Field(
        "prediction", description="Production's logged answer; read when present (evidence)."
    )
    latency_column: str = Field(
        "latency_ms", description="Production's logged latency; read when present (evidence)."
    )
    request_extra_fields: list[str] = Field(
        default_factory=list,
        description="Fields a logged request may carry besides the feature code's "
        "REQUIRED_COLUMNS and data.id_column (metadata production receives); any other field "
        "is refused as unexpected, so a renamed field is never read as missing values.",
    )

    _check_columns = field_validator(
        "request_id_column",
        "request_column",
        "logged_features_column",
        "prediction_column",
        "latency_column",
    )(identifier_field)

    @field_validator("request_extra_fields")
    @classmethod
    def _check_extra(cls, value: list[str]) -> list[str]:
        return [check_identifier(v) for v in value]


class DataSpec(SpecModel):
    """Datasets and the columns with a special role."""

    id_column: str
    timestamp_column: str
    label: str
    segments: list[str] = Field(default_factory=list, description="Segment columns.")
    query_column: str | None = Field(
        None,
        description="`model.task: ranking` only: the column naming each row's query; rows of "
        "one query are ranked together, and segment columns must be constant within a query.",
    )
    training: SourceSpec
    evaluation: SourceSpec
    serving_log: ServingLogSpec

    _check_columns = field_validator("id_column", "timestamp_column", "label")(identifier_field)

    @field_validator("query_column")
    @classmethod
    def _check_query(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)

    @field_validator("segments")
    @classmethod
    def _check_segments(cls, value: list[str]) -> list[str]:
        return [check_identifier(v) for v in value]
