"""Scoring the evaluation rows with a model artifact: the holdout and the labelled serving log.

Both models of a comparison score exactly the same rows (same ids, same order), so every
comparison downstream is paired. The serving log contributes its labelled requests (labels
arrive late) as a second, more recent evaluation set, rebuilt from the logged raw requests.
Scores are stored as the model produced them; invalid ones (non-finite, outside [0, 1]) are
kept and flagged so a gate can name the rows, never silently dropped or clipped.

Before any row is scored, the artifact's outputs are checked against the spec's task (a
regressor under a classification spec, or the reverse, is refused naming both), and the model's
input columns against the raw columns read from the data (a missing one is named).
"""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ml_release import keys
from ml_release.artifacts import read_manifest
from ml_release.artifacts.outputs import CLASSIFICATION_TASKS, fitted_columns
from ml_release.artifacts.skops_io import load_model
from ml_release.dbfile import one
from ml_release.errors import DataInputError
from ml_release.feature_code import load_feature_code
from ml_release.featurize import REQUESTS_TABLE, check_current, check_raw_columns
from ml_release.identifiers import quote
from ml_release.request_fields import checked_requests, requests_frame
from ml_release.spec import ReleaseSpec
from ml_release.warehouse import Warehouse

HOLDOUT, SERVING = "holdout", "serving"
KEY_COLUMNS = ["eval_set", "row_id", "label"]


def evaluation_rows(warehouse: Warehouse, spec: ReleaseSpec) -> pd.DataFrame:
    """Raw rows of both evaluation sets, with `eval_set`, `row_id`, 0/1 `label` and segments."""
    frame = raw_evaluation_rows(warehouse, spec)
    frame["label"] = frame["label"].astype(int)
    return frame


def check_labelled(holdout: pd.DataFrame, label: str, where: str) -> None:
    """Every holdout row has its label; DataInputError with the count and examples if not.

    (Serving requests whose label has not arrived yet are left out instead: labels come late.)
    """
    missing = holdout["label"].isna().to_numpy()
    if missing.any():
        shown = ", ".join(map(str, holdout["row_id"].to_numpy()[missing][:5]))
        raise DataInputError(
            f"{keys.EVALUATION_HOLDOUT}: {int(missing.sum())} of {len(holdout)} rows of {where} "
            f"have no label {label!r} (NaN or null), e.g. row ids {shown}. The holdout is "
            "judged on its labels. Fix: drop the unlabelled rows from the export, or label them."
        )


def raw_evaluation_rows(warehouse: Warehouse, spec: ReleaseSpec) -> pd.DataFrame:
    """Raw rows of both evaluation sets, with `eval_set`, `row_id`, `label` (as read), segments.

    Each segment's value is the one its feature table holds (the feature code's output, or the
    raw column passed through), paired row by row with the raw dataset it was computed from,
    so the feature code is not run again here.
    """
    code = load_feature_code(spec.features.code)
    raw_columns = list(code.required_columns)
    log = spec.data.serving_log
    label = spec.data.label
    any_type = "categorical"  # check_raw_columns checks these columns' presence only
    needs = {
        keys.EVALUATION_HOLDOUT: {spec.data.id_column: any_type, label: any_type}
        | code.required_columns,
        keys.SERVING_LOG: {log.request_id_column: any_type, log.request_column: any_type}
        | {label: any_type},
    }
    for table, needed in needs.items():  # the feature assets' clear error, not a binder error
        check_raw_columns(
            warehouse.columns(table), needed, table, spec.source_for(table).describe()
        )
    with warehouse.connect() as connection:
        holdout = _with_segments(
            connection,
            spec,
            keys.EVALUATION_FEATURES,
            spec.data.id_column,
            [f"{quote(label)} AS label", *(quote(c) for c in raw_columns)],
            code.version,
            order="ORDER BY row_id",
        )
        stored = _stored_requests(connection, raw_columns)
        logged = _with_segments(
            connection,
            spec,
            keys.SERVING_FEATURES_RECOMPUTED,
            log.request_id_column,
            [
                f"{quote(label)} AS label",
                *([] if stored is not None else [f"{quote(log.request_column)} AS request"]),
            ],
            code.version,
        )
    texts = logged.pop("request") if stored is None else None
    check_labelled(holdout, label, spec.source_for(keys.EVALUATION_HOLDOUT).describe())
    known = logged["label"].notna().to_numpy()  # labels arrive late: the labelled ones are kept
    labelled = logged[known]
    if stored is not None:  # parsed and checked with the serving features (check_current)
        requests = stored.filter(pa.array(known)).to_pandas()
        requests.index = labelled.index
    else:  # every logged request is checked: a field renamed inside the JSON reads as nulls
        parsed = checked_requests(spec, code.required_columns, logged["row_id"], texts)
        requests = requests_frame(
            [request for request, keep in zip(parsed, known, strict=True) if keep],
            raw_columns,
            labelled.index,
        )
    for segment in spec.data.segments:  # a request field the serving features do not hold
        if f"segment__{segment}" not in labelled:
            labelled = labelled.assign(**{f"segment__{segment}": requests[segment]})
    served = pd.concat([labelled, requests], axis=1).sort_values("row_id", kind="stable")
    frame = pd.concat(
        [holdout.assign(eval_set=HOLDOUT), served.assign(eval_set=SERVING)], ignore_index=True
    )
    for segment in spec.data.segments:
        frame[f"segment__{segment}"] = frame[f"segment__{segment}"].astype(str)
    frame["row_id"] = frame["row_id"].astype(str)
    return frame


def _stored_requests(connection, columns: list[str]) -> "pa.Table | None":
    """The serving log's request fields as the serving features stored them, or None.

    None when the serving features left no such table (`ml_release.featurize`), or it lacks
    one of `columns` or a row: then the requests are parsed again.
    """
    try:
        table = connection.sql(f"SELECT * FROM {REQUESTS_TABLE}").to_arrow_table()
    except duckdb.CatalogException:
        return None
    (features,) = one(connection, f"SELECT count(*) FROM {keys.SERVING_FEATURES_RECOMPUTED}")
    if table.num_rows != features or not set(columns) <= set(table.column_names):
        return None
    return table.select(columns)


def _with_segments(
    connection,
    spec: ReleaseSpec,
    feature_table: str,
    id_column: str,
    columns: list[str],
    code: str,
    order: str = "",
) -> pd.DataFrame:
    """`columns` of the feature table's raw dataset, row for row with its segment values.

    A feature table keeps its raw dataset's rows in order and their ids: both are read side
    by side (POSITIONAL JOIN), and a row whose ids differ is a DataInputError, as is a table
    computed from other data (`check_current`).
    """
    check_current(connection, spec, feature_table, code)
    raw_table = keys.FEATURE_SOURCES[feature_table]
    present = {row[0] for row in connection.execute(f"DESCRIBE {quote(feature_table)}").fetchall()}
    segments = [
        f"f.{quote(s)} AS {quote(f'segment__{s}')}" for s in spec.data.segments if s in present
    ]
    frame = connection.sql(
        f"SELECT r.{quote(id_column)} AS row_id, "
        + ", ".join(f"r.{c}" for c in columns)
        + "".join(f", {s}" for s in segments)
        + f", r.{quote(id_column)} IS DISTINCT FROM f.{quote(id_column)} AS misaligned "
        f"FROM {quote(raw_table)} r POSITIONAL JOIN {quote(feature_table)} f {order}"
    ).df()
    misaligned = frame.pop("misaligned").to_numpy(dtype=bool)
    if misaligned.any():
        raise DataInputError(
            f"{feature_table} does not hold {raw_table}'s rows in order ({int(misaligned.sum())} "
            f"of {len(frame)} rows differ in {id_column!r}). Fix: materialize {feature_table} "
            "again (`ml-release run` materializes everything)."
        )
    return frame


def load_for_task(folder: Path, spec: ReleaseSpec, digest: str | None = None):
    """The artifact's model, safe-loaded (`digest`: the registry's), fitting `model.task`."""
    manifest = read_manifest(folder)
    task = spec.model.task
    schema = manifest.output_schema
    kind = schema.kind if schema is not None else "unknown"
    wanted = "classification" if task in CLASSIFICATION_TASKS else "regression"
    if kind != wanted:
        seen = (
            f"a regressor (output {schema.prediction_column!r})"
            if kind == "regression"
            else f"a classifier (classes {schema.classes})"
            if schema is not None
            else "no output schema"
        )
        raise DataInputError(
            f"{folder}: model.task {task} expects "
            f"{'a classifier with predict_proba' if wanted == 'classification' else 'a regressor'}"
            f"; the artifact holds {seen} ({manifest.estimator or 'unknown estimator'}). Fix: "
            "publish a model of the spec's task, or correct model.task"
        )
    return load_model(
        folder, feature_code=spec.features.code, trusted=spec.trusted_types, digest=digest
    )


def model_input(model, rows: pd.DataFrame, spec: ReleaseSpec, folder: Path) -> pd.DataFrame:
    """The columns `model` takes, from `rows`; DataInputError naming any it lacks."""
    raw_columns = list(load_feature_code(spec.features.code).required_columns)
    columns = fitted_columns(model) or raw_columns
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise DataInputError(
            f"{folder}: the model needs column(s) {', '.join(map(repr, missing))}, which are not "
            f"among the raw columns read from the data ({', '.join(raw_columns)}). Fix: add them "
            f"to REQUIRED_COLUMNS of {spec.features.code} (and to the data), or fit the model "
            "on those columns"
        )
    return rows[columns]


def score(
    folder: Path, spec: ReleaseSpec, rows: pd.DataFrame, digest: str | None = None
) -> np.ndarray:
    """P(label = 1) from the artifact at `folder` (safe-loaded, `digest` checked) per row."""
    model = load_for_task(folder, spec, digest)
    classes = list(model.classes_)
    if 1 not in classes:
        raise DataInputError(
            f"{folder}: the model's classes are {classes}; model.task binary_classification "
            "expects 0 and 1. Fix: train on 0/1 labels"
        )
    x = model_input(model, rows, spec, folder)
    return np.asarray(model.predict_proba(x)[:, classes.index(1)], dtype=float)


def invalid_rows(scores: np.ndarray) -> np.ndarray:
    """Positions of scores that are not probabilities (NaN, inf, outside [0, 1])."""
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    return np.flatnonzero(bad)


def predictions_table(rows: pd.DataFrame, scores: np.ndarray, spec: ReleaseSpec) -> pd.DataFrame:
    """The stored predictions: keys, label, segments and the score."""
    segments = [f"segment__{s}" for s in spec.data.segments]
    out = rows[[*KEY_COLUMNS, *segments]].copy()
    out["score"] = scores
    return out


def training_prior(warehouse: Warehouse, spec: ReleaseSpec) -> float:
    """Positive rate of the training snapshot: the trivial model's constant score."""
    with warehouse.connect() as connection:
        rows = connection.execute(
            f"SELECT avg({quote(spec.data.label)}) FROM {quote(keys.TRAINING_SNAPSHOT)}"
        ).fetchall()
    return float(rows[0][0])
