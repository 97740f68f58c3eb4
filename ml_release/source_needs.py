"""Which columns each source must hold for this spec, and why: only what the gates and model read.

The feature code's `REQUIRED_COLUMNS` are checked where they are read (`featurize`); this module
names the columns with a role: the label, the ids, the serving log's request, and the serving
log's columns that only some gates read (`logged_features_column` for the parity gate, the
timestamp for shadow replay and canaries). A column no listed gate reads is never required:
`latency_column` and `prediction_column` are read when present, for evidence only.

`check_role_columns` gives one message for every missing or mistyped column, naming the key
that declares it and what reads it; the data assets and `ml-release validate` both call it, so
`validate` says what `run` would.
"""

from dataclasses import dataclass

from ml_release import keys
from ml_release.errors import DataInputError
from ml_release.featurize import is_numeric_type
from ml_release.gates.catalog import CATALOG
from ml_release.spec import ReleaseSpec, close_matches

ANY, NUMERIC, TEXT, LABEL, TIME = "any", "numeric", "text", "label", "time"
TEXT_TYPES = ("VARCHAR", "JSON")
# Rows are ordered by time (the training split, replay): text times with mixed zones or typos
# would sort as text, so a time is a timestamp or date type, or a number (epoch).
TIME_TYPES = ("TIMESTAMP", "DATE")
# A binary label may also be stored as a boolean.
LABEL_TYPES = {
    "binary_classification": "numbers 0/1 (or booleans)",
    "regression": "numbers",
    "ranking": "numbers (graded relevance >= 0)",
}


@dataclass(frozen=True)
class Need:
    """A column a source must hold: its name, kind (`any`, `numeric`, `text`, `label`, `time`)."""

    column: str
    kind: str
    why: str


def _gates_of(spec: ReleaseSpec, family: str) -> list[str]:
    return [g.id for g in spec.gates if CATALOG[g.name].family == family]


def role_needs(spec: ReleaseSpec) -> dict[str, list[Need]]:
    """Per dataset, the role columns this spec's gates and model read (not REQUIRED_COLUMNS)."""
    data = spec.data
    assert data is not None  # tabular tasks only
    label = Need(data.label, LABEL, "data.label")
    query = (
        [Need(data.query_column, ANY, "data.query_column (the query of each row)")]
        if spec.model.task == "ranking" and data.query_column
        else []
    )
    training = [
        label,
        Need(
            data.timestamp_column,
            TIME,
            "data.timestamp_column (ml-release run trains on the "
            "older rows and validates on the newer)",
        ),
        *query,
    ]
    holdout = [Need(data.id_column, ANY, "data.id_column (pairs both models' scores)"), label]
    log = data.serving_log
    serving = [
        Need(log.request_id_column, ANY, "data.serving_log.request_id_column"),
        Need(log.request_column, TEXT, "data.serving_log.request_column (raw requests, JSON)"),
    ]
    if spec.model.task != "ranking":  # labelled requests are the `serving` evaluation set
        serving.append(
            Need(
                data.label,
                LABEL,
                "data.label (the labelled requests are the "
                "`serving` evaluation set; null until a label arrives)",
            )
        )
    parity = _gates_of(spec, "parity")
    if parity:
        serving.append(
            Need(
                log.logged_features_column,
                TEXT,
                f"data.serving_log.logged_features_column, read by {parity[0]}",
            )
        )
    replay = _gates_of(spec, "shadow") + (["canary"] if spec.canary.enabled else [])
    if replay:
        serving.append(
            Need(
                data.timestamp_column,
                TIME,
                f"data.timestamp_column, the replay order of {', '.join(replay)}",
            )
        )
    return {
        keys.TRAINING_SNAPSHOT: training,
        keys.EVALUATION_HOLDOUT: [*holdout, *query],
        keys.SERVING_LOG: serving,
    }


def _type_problem(need: Need, found: str, task: str) -> str | None:
    upper = found.upper()
    if need.kind == NUMERIC and not is_numeric_type(found):
        return f"must be numeric but is {found} (numbers stored as text?)"
    if need.kind == TEXT and upper not in TEXT_TYPES:
        return f"must be text (JSON) but is {found}"
    if need.kind == TIME and not (upper.startswith(TIME_TYPES) or is_numeric_type(found)):
        return (
            f"must be a timestamp but is {found} (times stored as text sort as text: mixed "
            "time zones or unparsable values?); export it as a timestamp with time zone"
        )
    if need.kind == LABEL and task in LABEL_TYPES:
        if not (is_numeric_type(found) or (upper == "BOOLEAN" and task == "binary_classification")):
            return f"must hold {LABEL_TYPES[task]} for model.task {task} but is {found}"
    return None


def check_role_columns(
    columns: dict[str, str], needs: list[Need], dataset: str, where: str, task: str
) -> None:
    """Raise DataInputError naming every needed column that is missing or has the wrong type.

    Args:
        columns: The source's columns and their DuckDB types.
        needs: What this spec needs from the source (`role_needs`).
        dataset: `training_snapshot`, `evaluation_holdout` or `serving_log`.
        where: The source, for the message (its path or table).
        task: The spec's model.task (which label types fit).
    """
    problems = []
    present = list(columns)
    for need in needs:
        if need.column not in columns:
            hint = close_matches(need.column, [c for c in present if c not in _named(needs)])
            problems.append(
                f"column {need.column!r} ({need.why}) is missing.{hint} Present: "
                f"{', '.join(present)}"
            )
        elif (problem := _type_problem(need, columns[need.column], task)) is not None:
            problems.append(f"column {need.column!r} ({need.why}) {problem}")
    if problems:
        raise DataInputError(
            f"{dataset} ({where}) lacks columns the release needs:\n  - "
            + "\n  - ".join(problems)
            + "\nFix: correct the export, or the column names in the spec's `data` section "
            "(docs/spec.md)."
        )


def _named(needs: list[Need]) -> set[str]:
    return {need.column for need in needs}
