"""The paired evaluation data: both models' scores on the same rows, per evaluation set."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_release import keys
from ml_release.identifiers import quote
from ml_release.warehouse import Warehouse


@dataclass(frozen=True)
class PredictionTables:
    """The warehouse tables holding one candidate's predictions and its baseline's.

    Keyed by the candidate digest, so releases of two candidates at once never read each
    other's rows. The baseline table names the model it holds in `baseline_digest` ("none"
    for the trivial model of a first release).
    """

    candidate_digest: str

    @property
    def candidate(self) -> str:
        """Table of the candidate's predictions."""
        return f"{keys.CANDIDATE_PREDICTIONS}__{self.candidate_digest[:24]}"

    @property
    def baseline(self) -> str:
        """Table of the baseline's predictions on the same rows."""
        return f"{keys.BASELINE_PREDICTIONS}__{self.candidate_digest[:24]}"

    def baseline_digest(self, warehouse: Warehouse) -> str:
        """The digest of the model the baseline table holds ("none": the trivial model)."""
        from ml_release.errors import DataInputError

        if not warehouse.exists(self.baseline):
            raise DataInputError(
                f"no baseline predictions for candidate {self.candidate_digest[:12]}: "
                f"materialize {keys.BASELINE_PREDICTIONS} for this candidate first"
            )
        rows = warehouse.frame(f"SELECT DISTINCT baseline_digest FROM {quote(self.baseline)}")
        values = rows["baseline_digest"].tolist()
        if len(values) != 1:
            raise DataInputError(f"{self.baseline} holds predictions of {values}, not one model")
        return str(values[0])


@dataclass
class EvalSet:
    """One evaluation set: labels, both models' scores, segment values, row ids."""

    name: str
    row_ids: np.ndarray
    y: np.ndarray
    candidate: np.ndarray
    baseline: np.ndarray
    segments: dict[str, np.ndarray]
    trivial_baseline: bool

    @property
    def invalid(self) -> np.ndarray:
        """Positions of candidate scores that are not probabilities."""
        s = self.candidate
        return np.flatnonzero(~np.isfinite(s) | (s < 0) | (s > 1))


def paired_predictions(
    warehouse: Warehouse,
    tables: PredictionTables,
    segments: list[str],
    extra: tuple[str, ...] = (),
    eval_set: str | None = None,
) -> pd.DataFrame:
    """Candidate and baseline predictions joined on (eval_set, row_id), in row order.

    Columns: eval_set, row_id, the `extra` prediction columns, label, candidate, baseline and
    `segment__<s>` for every segment; only `eval_set`'s rows when one is given.
    """
    columns = [
        "c.eval_set",
        "c.row_id",
        *(f"c.{quote(c)}" for c in extra),
        "c.label",
        "c.score AS candidate",
        "b.score AS baseline",
        *(f"c.{quote(f'segment__{s}')}" for s in segments),
    ]
    where, params = ("WHERE c.eval_set = ? ", [eval_set]) if eval_set is not None else ("", [])
    return warehouse.frame(
        f"SELECT {', '.join(columns)} FROM {quote(tables.candidate)} c "
        f"JOIN {quote(tables.baseline)} b USING (eval_set, row_id) "
        f"{where}ORDER BY c.eval_set, c.row_id",
        params,
    )


def paired_arrays(part: pd.DataFrame, segments: list[str]) -> dict[str, object]:
    """Row ids, both models' scores and segment values of a `paired_predictions` frame."""
    return {
        "row_ids": part["row_id"].astype(str).to_numpy(),
        "candidate": part["candidate"].to_numpy(dtype=float),
        "baseline": part["baseline"].to_numpy(dtype=float),
        "segments": {s: part[f"segment__{s}"].astype(str).to_numpy() for s in segments},
    }


def load_eval_sets(
    warehouse: Warehouse, tables: PredictionTables, segments: list[str], trivial_baseline: bool
) -> dict[str, EvalSet]:
    """Join candidate and baseline predictions on (eval_set, row_id)."""
    frame = paired_predictions(warehouse, tables, segments)
    return {
        str(name): EvalSet(
            name=str(name),
            y=part["label"].to_numpy().astype(int),
            trivial_baseline=trivial_baseline,
            **paired_arrays(part, segments),  # type: ignore[arg-type]
        )
        for name, part in frame.groupby("eval_set", sort=True)
    }
