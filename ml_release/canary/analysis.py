"""The analysis at every canary look: candidate against production, within each step.

Up to four comparisons, each an anytime-valid confidence sequence over the steps so far
(`ml_release.stats.stratified`), so looking after every step does not inflate false aborts:

- `error_rate`: HTTP errors, timeouts and refused connections, over all routed requests;
- `latency`: mean log latency of answered requests (margin: a relative increase);
- `score_shift`: mean score, a shift either way beyond the margin (the score: the positive
  class's probability; a multi-class model's top-class probability; a regressor's prediction,
  in the target's units);
- `quality`: per-request loss on the requests whose label has arrived (log loss of the
  labelled class; a regressor's absolute error), off with `quality_margin: null`; on and no
  label by the last step: inconclusive, never a pass.

**Like with like.** The arms are compared within each step, where both served the same
stretch of traffic, and the steps are combined; a step where an arm served too few requests
(5 for the error rate, 30 for means; the 100 % step, for production) adds nothing to a
comparison.

**The family.** A false abort by any comparison aborts the canary, so the k comparisons share
the canary's `alpha`: each runs at alpha / k (Bonferroni), and the chance that any of them ever
aborts a candidate within all its margins stays under `alpha` over the whole rollout.

The look fails when any comparison fails. At the final look it passes only when every
comparison passes; otherwise it is inconclusive, and inconclusive never promotes.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml_release.gates.result import Verdict
from ml_release.serving.client import PREDICTION
from ml_release.serving.traffic import RouteRecord
from ml_release.spec import CanarySpec
from ml_release.stats.sequential import SequentialResult
from ml_release.stats.stratified import (
    MIN_N,
    mean_stratum,
    rate_stratum,
    stratified_sequence,
)

CANDIDATE, PRODUCTION = "candidate", "production"
BINARY, MULTICLASS, REGRESSION = "binary_classification", "multiclass_classification", "regression"
_EPS = 1e-6
# Requests per arm before a step counts: error counts are judged from 5 (a candidate refusing
# everything at the 5 % step is aborted there), means from 30 (a running variance).
MIN_ERRORS_N = 5


@dataclass
class ArmRequests:
    """What one arm served in one step, as arrays."""

    errors: np.ndarray  # one flag per routed request
    log_latency: np.ndarray  # answered requests
    scores: np.ndarray  # answered requests with a score (see `_score`)
    losses: np.ndarray  # answered requests whose label has arrived (see `_loss`)


@dataclass
class StepRequests:
    """Both arms' requests in one traffic step."""

    step: float
    arms: dict[str, ArmRequests]

    def served(self, arm: str) -> int:
        """Routed requests of `arm` in this step."""
        return int(self.arms[arm].errors.size)


@dataclass
class Look:
    """One analysis: per comparison its result, and the look's decision."""

    step: float
    decision: Verdict
    results: dict[str, SequentialResult]
    served: dict[str, int]
    reasons: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One row per comparison, for the ledger and the UI."""
        return [
            {
                "comparison": name,
                "decision": str(r.decision.value),
                "estimate": r.estimate,
                "lower": r.lower,
                "upper": r.upper,
                "margin": r.margin,
                "alpha": r.alpha,
                "candidate": r.candidate,
                "production": r.production,
                "n_candidate": r.n_candidate,
                "n_production": r.n_production,
            }
            for name, r in self.results.items()
        ]


# What the score and the per-request loss are, by task: the score's mean is compared
# (`score_shift`), the loss's mean on labelled requests too (`quality`).
SCORES = {
    BINARY: "mean score (positive-class probability)",
    MULTICLASS: "mean top-class probability",
    REGRESSION: "mean prediction",
}
LOSSES = {BINARY: "log loss", MULTICLASS: "log loss", REGRESSION: "absolute error"}


def _score(record: RouteRecord, task: str) -> float:
    """P(positive class) (binary), the top class's probability (multi-class), the prediction."""
    answers = record.probabilities or {}
    if task == REGRESSION:
        value = (answers.get(PREDICTION) or [None])[0]
        return math.nan if value is None else float(value)
    probabilities = {name: values[0] for name, values in answers.items() if name != PREDICTION}
    if not probabilities:
        return math.nan
    if task == MULTICLASS:
        return float(max(probabilities.values()))
    names = sorted(probabilities)
    return float(probabilities["proba_1" if "proba_1" in names else names[-1]])


def _loss(record: RouteRecord, label: Any, score: float, task: str) -> float:
    """The loss against the label: -log p(label) (classification), |error| (regression)."""
    if task == REGRESSION:
        return abs(score - float(label))
    answers = record.probabilities or {}
    names = [f"proba_{label}"]
    if isinstance(label, float) and label.is_integer():  # 1.0 read from a column with gaps
        names.append(f"proba_{int(label)}")
    found = next((answers[n][0] for n in names if n in answers), None)
    if found is None:
        return math.nan  # a class the model does not know: no loss to compare
    return -math.log(min(max(float(found), 1e-12), 1 - 1e-12))


def _arm(records: list[RouteRecord], labels: dict[str, Any], task: str) -> ArmRequests:
    answered = [r for r in records if not r.error]
    scores = np.array([_score(r, task) for r in answered])
    losses = np.array(
        [
            _loss(r, labels[r.request_id], s, task)
            for r, s in zip(answered, scores, strict=True)
            if r.request_id in labels and np.isfinite(s)
        ]
    )
    return ArmRequests(
        errors=np.array([r.error for r in records], dtype=bool),
        log_latency=np.log([max(r.latency_s, _EPS) for r in answered]),
        scores=scores[np.isfinite(scores)],
        losses=losses[np.isfinite(losses)] if losses.size else losses,
    )


def step_requests(
    step: float, records: list[RouteRecord], labels: dict[str, Any], task: str = BINARY
) -> StepRequests:
    """The step's routed records, per arm, as arrays (records never sent are left out)."""
    sent = [r for r in records if r.status != "not sent"]
    return StepRequests(
        step,
        {
            arm: _arm([r for r in sent if r.backend == arm], labels, task)
            for arm in (CANDIDATE, PRODUCTION)
        },
    )


def comparisons(settings: CanarySpec) -> list[str]:
    """The comparisons of this canary: their number splits alpha, so it is fixed in advance."""
    names = ["error_rate", "latency", "score_shift"]
    return names + (["quality"] if settings.quality_margin is not None else [])


def planned_effective_requests(settings: CanarySpec, min_n: int = MIN_N) -> float:
    """Effective requests (n_c n_p / (n_c + n_p)) summed over the plan's steps that count.

    The tuning point of a comparison's confidence sequence, fixed by the plan before the
    canary starts (at least 20).
    """
    total = 0.0
    for share in settings.steps:
        n_c = settings.requests_per_step * share / 100
        n_p = settings.requests_per_step - n_c
        if min(n_c, n_p) >= min_n:
            total += n_c * n_p / (n_c + n_p)
    return max(total, 20.0)


def analyze(
    steps: list[StepRequests], settings: CanarySpec, final: bool, task: str = BINARY
) -> Look:
    """Judge every comparison on the steps so far, within each step; the last is the look's."""
    names = comparisons(settings)
    kw = {
        "alpha": settings.alpha / len(names),
        "final": final,
        "tuned_n": planned_effective_requests(settings),
    }
    arms = [(s.arms[CANDIDATE], s.arms[PRODUCTION]) for s in steps]
    results = {
        "error_rate": stratified_sequence(
            "error rate",
            [
                rate_stratum(int(c.errors.sum()), c.errors.size, int(p.errors.sum()), p.errors.size)
                for c, p in arms
            ],
            settings.error_margin,
            **{**kw, "tuned_n": planned_effective_requests(settings, MIN_ERRORS_N)},
            min_n=MIN_ERRORS_N,
        ),
        "latency": stratified_sequence(
            "mean log latency",
            [mean_stratum(c.log_latency, p.log_latency) for c, p in arms],
            math.log1p(settings.latency_margin),
            **kw,
        ),
        "score_shift": stratified_sequence(
            SCORES[task],
            [mean_stratum(c.scores, p.scores) for c, p in arms],
            settings.score_shift_margin,
            two_sided=True,
            **kw,
        ),
    }
    labelled = sum(min(c.losses.size, p.losses.size) for c, p in arms)
    if "quality" in names:
        results["quality"] = stratified_sequence(
            f"{LOSSES[task]} (labelled requests)",
            [mean_stratum(c.losses, p.losses) for c, p in arms],
            settings.quality_margin,
            **kw,
        )
    served = {arm: sum(s.served(arm) for s in steps) for arm in (CANDIDATE, PRODUCTION)}
    return _decide(steps[-1].step, final, results, served, labelled)


def _decide(
    step: float,
    final: bool,
    results: dict[str, SequentialResult],
    served: dict[str, int],
    labelled: int,
) -> Look:
    reasons = []
    failing = [n for n, r in results.items() if r.decision is Verdict.FAIL]
    if served[CANDIDATE] == 0:
        failing.append("no_data")
        reasons.append(f"the candidate served no request by the {step:g} % step: no data")
    reasons += [f"{n}: {results[n].reason}" for n in failing if n in results]
    if failing:
        return Look(step, Verdict.FAIL, results, served, reasons)
    if not final:
        return Look(step, Verdict.INCONCLUSIVE, results, served, ["continue"])
    unsure = [n for n, r in results.items() if r.decision is not Verdict.PASS]
    if "quality" in results and not labelled:
        reasons.append(
            "no labelled request by the last step: online quality cannot be judged "
            "(set canary.quality_margin: null when labels arrive later than a canary runs)"
        )
    if unsure:
        reasons += [f"{n}: {results[n].reason}" for n in unsure]
        return Look(step, Verdict.INCONCLUSIVE, results, served, reasons)
    return Look(step, Verdict.PASS, results, served, reasons or ["every comparison passed"])
