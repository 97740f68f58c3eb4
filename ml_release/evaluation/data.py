"""The paired evaluation data: both models' scores on the same rows, per evaluation set."""

from dataclasses import dataclass

import numpy as np

from ml_release import keys
from ml_release.warehouse import Warehouse


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


def load_eval_sets(
    warehouse: Warehouse, segments: list[str], trivial_baseline: bool
) -> dict[str, EvalSet]:
    """Join candidate and baseline predictions on (eval_set, row_id)."""
    segment_columns = ", ".join(f'c."segment__{s}"' for s in segments)
    frame = warehouse.frame(
        f"SELECT c.eval_set, c.row_id, c.label, c.score AS candidate, b.score AS baseline"
        f"{', ' + segment_columns if segments else ''} "
        f'FROM "{keys.CANDIDATE_PREDICTIONS}" c JOIN "{keys.BASELINE_PREDICTIONS}" b '
        "USING (eval_set, row_id) ORDER BY c.eval_set, c.row_id"
    )
    sets = {}
    for name, part in frame.groupby("eval_set", sort=True):
        sets[str(name)] = EvalSet(
            name=str(name),
            row_ids=part["row_id"].to_numpy(),
            y=part["label"].to_numpy().astype(int),
            candidate=part["candidate"].to_numpy(dtype=float),
            baseline=part["baseline"].to_numpy(dtype=float),
            segments={s: part[f"segment__{s}"].astype(str).to_numpy() for s in segments},
            trivial_baseline=trivial_baseline,
        )
    return sets
