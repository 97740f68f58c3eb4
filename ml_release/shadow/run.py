"""One shadow replay: candidate and production served side by side, the log window replayed."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_release.serving.group import serve_group
from ml_release.serving.server import ServerOptions
from ml_release.shadow.replay import Answers, LoggedRequests, replay
from ml_release.spec import ReleaseSpec
from ml_release.subjects import ModelRef

CANDIDATE, PRODUCTION = "candidate", "production"


@dataclass
class ShadowReport:
    """The replayed window and both models' answers to it."""

    requests: LoggedRequests
    answers: dict[str, Answers]
    segments: dict[str, np.ndarray]
    threshold: float
    task: str = "binary_classification"

    @property
    def candidate(self) -> Answers:
        """The candidate's answers."""
        return self.answers[CANDIDATE]

    @property
    def production(self) -> Answers | None:
        """Production's answers (None before the first promotion)."""
        return self.answers.get(PRODUCTION)

    def labels(self, role: str) -> np.ndarray:
        """Predicted labels, NaN where the request failed.

        Binary: 1.0 / 0.0 at the threshold; multi-class: the most probable class's position.
        """
        if self.task == "multiclass_classification":
            return self.answers[role].predicted_class()
        score = self.answers[role].positive_score()
        return np.where(np.isnan(score), np.nan, (score >= self.threshold).astype(float))

    def both_answered(self) -> np.ndarray:
        """Requests both models answered."""
        return self.candidate.ok & self.production.ok if self.production else self.candidate.ok

    def flips(self) -> np.ndarray:
        """Per request, whether the label differs (only meaningful where both answered)."""
        return self.labels(CANDIDATE) != self.labels(PRODUCTION)


def run_shadow(
    candidate: ModelRef,
    production: ModelRef | None,
    store_root: Path,
    requests: LoggedRequests,
    contract: dict[str, str],
    spec: ReleaseSpec,
    options: ServerOptions,
    workdir: Path,
    progress: Callable[[str], None] = lambda message: None,
    replay_progress: Callable[[int, int], None] | None = None,
) -> ShadowReport:
    """Serve both models, replay the window to both, stop the servers, return the answers."""
    plan = [(CANDIDATE, candidate)] + ([(PRODUCTION, production)] if production else [])
    report_progress = replay_progress or (
        lambda done, total: progress(f"replayed {done}/{total} logged requests")
    )
    with serve_group(plan, store_root, workdir, options, spec.model.name, progress) as servers:
        answers = replay(
            servers,
            requests,
            contract,
            spec.shadow.concurrency,
            spec.shadow.timeout_seconds,
            report_progress,
            spec.shadow.batch_size,
            spec.shadow.latency_requests,
        )
    segments = {
        column: requests.raw[column].astype(str).to_numpy()
        for column in spec.data.segments
        if column in requests.raw
    }
    return ShadowReport(requests, answers, segments, spec.evaluation.threshold, spec.model.task)
