"""The canary for every task: what a request's score and loss are, and verdicts that can say no.

A binary model's score is its positive-class probability, a multi-class model's its top-class
probability, a regressor's its prediction; the loss on a labelled request is the log loss of
the labelled class, or a regressor's absolute error. The per-request losses average to
scikit-learn's metrics; a regressor whose predictions moved beyond the margin is aborted.
"""

import time

import numpy as np
import pytest
from sklearn.metrics import log_loss, mean_absolute_error

from ml_release.canary.analysis import BINARY, MULTICLASS, REGRESSION, step_requests
from ml_release.canary.controller import run_steps
from ml_release.gates.result import Verdict
from ml_release.serving.traffic import RouteRecord, backend_for
from ml_release.spec import CanarySpec
from tests.conftest import spec_error
from tests.test_canary import SimulatedSplit


def _record(request_id: str, answers: dict[str, list[float]], backend: str = "candidate"):
    return RouteRecord(request_id, backend, 200, 0.01, answers, time.time())


def test_multiclass_scores_are_top_class_probabilities_and_losses_sum_to_log_loss():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    proba = rng.dirichlet([2, 2, 2], size=200)
    labels = rng.choice(classes, size=200)
    records = [
        _record(f"r{i}", {f"proba_{c}": [p[k]] for k, c in enumerate(classes)})
        for i, p in enumerate(proba)
    ]
    arm = step_requests(100, records, {f"r{i}": y for i, y in enumerate(labels)}, MULTICLASS)
    candidate = arm.arms["candidate"]
    assert np.allclose(candidate.scores, proba.max(axis=1))
    assert candidate.losses.mean() == pytest.approx(log_loss(labels, proba, labels=classes))


def test_regression_scores_are_predictions_and_losses_are_absolute_errors():
    rng = np.random.default_rng(4)
    predictions, truth = rng.normal(150, 50, 300), rng.normal(150, 50, 300)
    records = [_record(f"r{i}", {"prediction": [p]}) for i, p in enumerate(predictions)]
    labels = {f"r{i}": y for i, y in enumerate(truth[:200])}  # a third not labelled yet
    candidate = step_requests(100, records, labels, REGRESSION).arms["candidate"]
    assert np.allclose(candidate.scores, predictions)
    assert candidate.losses.size == 200
    assert candidate.losses.mean() == pytest.approx(
        mean_absolute_error(truth[:200], predictions[:200])
    )


def test_binary_labels_read_as_floats_find_their_class():
    """1.0 from a label column with gaps is the class `1`: the loss is not silently dropped."""
    proba = np.array([0.9, 0.2, 0.7])
    labels = {"r0": 1.0, "r1": 0.0, "r2": 0.0}
    records = [_record(f"r{i}", {"proba_0": [1 - p], "proba_1": [p]}) for i, p in enumerate(proba)]
    candidate = step_requests(100, records, labels, BINARY).arms["candidate"]
    assert candidate.losses.mean() == pytest.approx(log_loss([1, 0, 0], proba))


class RegressionSplit(SimulatedSplit):
    """Two simulated regressors: production predicts around the truth, the candidate `shift` off."""

    def __init__(self, shift: float, seed: int = 0):
        super().__init__(candidate_error=0.0, seed=seed)
        self.shift = shift
        self.labels: dict[str, float] = {}

    def send(self, index: int, n: int) -> None:
        for k in range(n):
            request_id = f"s{index}-{k}"
            truth = float(self.rng.normal(150, 50))
            backend = backend_for(request_id, self._weight)
            prediction = (
                truth + self.rng.normal(0, 10) + (self.shift if backend == "candidate" else 0)
            )
            self.labels[request_id] = truth
            self._records.append(
                RouteRecord(
                    request_id,
                    backend,
                    200,
                    float(self.rng.lognormal(np.log(0.01), 0.1)),
                    {"prediction": [prediction]},
                    time.time(),
                )
            )


SETTINGS = CanarySpec(
    enabled=True,
    steps=[25.0, 50.0, 100.0],
    requests_per_step=2000,
    score_shift_margin=10.0,  # target units (predictions spread by 50)
    quality_margin=3.0,  # mean absolute error, target units
)


def _regression_canary(shift: float):
    split = RegressionSplit(shift)

    def send(index: int) -> None:
        split.send(index, SETTINGS.requests_per_step)

    # Labels arrive as the requests are sent: the analysis reads the dict at each look.
    return run_steps(split, send, SETTINGS, split.labels, task=REGRESSION)


def test_a_regression_canary_aborts_a_shifted_candidate_and_promotes_its_twin():
    shifted = _regression_canary(shift=30.0)
    assert shifted.verdict is Verdict.FAIL
    failed = shifted.looks[-1]
    assert failed.results["score_shift"].decision is Verdict.FAIL
    assert failed.results["quality"].decision is Verdict.FAIL  # |error|: about 8 -> 30
    assert "mean prediction" in shifted.reason
    twin = _regression_canary(shift=0.0)
    assert twin.verdict is Verdict.PASS, twin.reason


def test_canary_margins_follow_the_task(tmp_path):
    from ml_release.spec import parse_spec
    from tests.test_task_release import EXAMPLES, example_spec

    data = example_spec("regression")
    data["canary"] = {"enabled": True}
    assert "set the shift you tolerate" in spec_error(tmp_path, data)
    data["canary"]["score_shift_margin"] = 5.0
    assert parse_spec(data, EXAMPLES / "regression" / "release.yaml").canary.enabled
    data = example_spec("multiclass")
    data["canary"] = {"enabled": True, "score_shift_margin": 2.0}
    assert "a probability, at most 1" in spec_error(tmp_path, data)
