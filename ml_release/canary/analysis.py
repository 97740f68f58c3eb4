"""The analysis at every canary look: candidate against production on what each served.

Four comparisons, each an anytime-valid confidence sequence (`ml_release.stats.sequential`)
over everything each arm served since the canary began, so looking after every step does
not inflate false aborts:

- `error_rate`: HTTP errors, timeouts and refused connections, over all routed requests;
- `latency`: mean log latency of answered requests (margin: a relative increase);
- `score_shift`: mean score, tested both ways at alpha/2 each;
- `quality`: per-request log loss on the requests whose label has arrived (not judged
  without labels).

The look fails when any comparison fails. At the final look it passes only when every judged
comparison passes; otherwise it is inconclusive, and inconclusive never promotes.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml_release.gates.result import Verdict
from ml_release.serving.router import RouteRecord
from ml_release.spec import CanarySpec
from ml_release.stats.sequential import SequentialResult, error_rate_sequence, mean_sequence

CANDIDATE, PRODUCTION = "candidate", "production"
_EPS = 1e-6


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
                "candidate": r.candidate,
                "production": r.production,
                "n_candidate": r.n_candidate,
                "n_production": r.n_production,
            }
            for name, r in self.results.items()
        ]


def _score(record: RouteRecord) -> float:
    if not record.probabilities:
        return math.nan
    names = sorted(record.probabilities)
    positive = "proba_1" if "proba_1" in names else names[-1]
    return float(record.probabilities[positive][0])


def analyze(
    records: list[RouteRecord],
    labels: dict[str, float],
    settings: CanarySpec,
    step: float,
    final: bool,
    tuned_n: int,
) -> Look:
    """Judge every comparison on the cumulative `records`; `labels` by request id (0/1)."""
    arms = {
        arm: [r for r in records if r.backend == arm and r.status != "not sent"]
        for arm in (CANDIDATE, PRODUCTION)
    }
    served = {arm: len(rs) for arm, rs in arms.items()}
    kw = {"alpha": settings.alpha, "final": final, "tuned_n": tuned_n}
    errors = {arm: sum(r.error for r in rs) for arm, rs in arms.items()}
    results = {
        "error_rate": error_rate_sequence(
            errors[CANDIDATE],
            served[CANDIDATE],
            errors[PRODUCTION],
            served[PRODUCTION],
            settings.error_margin,
            **kw,
        )
    }
    ok = {arm: [r for r in rs if not r.error] for arm, rs in arms.items()}
    log_latency = {arm: np.log([max(r.latency_s, _EPS) for r in rs]) for arm, rs in ok.items()}
    results["latency"] = mean_sequence(
        log_latency[CANDIDATE],
        log_latency[PRODUCTION],
        math.log1p(settings.latency_margin),
        **kw,
    )
    scores = {arm: np.array([_score(r) for r in rs]) for arm, rs in ok.items()}
    half = {**kw, "alpha": settings.alpha / 2}
    up = mean_sequence(scores[CANDIDATE], scores[PRODUCTION], settings.score_shift_margin, **half)
    down = mean_sequence(
        -scores[CANDIDATE], -scores[PRODUCTION], settings.score_shift_margin, **half
    )
    # Fail when either direction fails; pass only when both pass.
    order = (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS)
    results["score_shift"] = min(up, down, key=lambda r: order.index(r.decision))
    losses = {}
    for arm, rs in ok.items():
        pairs = [(labels[r.request_id], _score(r)) for r in rs if r.request_id in labels]
        y = np.array([p[0] for p in pairs])
        p = np.clip(np.array([p[1] for p in pairs]), 1e-12, 1 - 1e-12)
        losses[arm] = -(y * np.log(p) + (1 - y) * np.log(1 - p)) if len(pairs) else np.array([])
    labelled = min(len(losses[CANDIDATE]), len(losses[PRODUCTION]))
    if labelled:
        results["quality"] = mean_sequence(
            losses[CANDIDATE], losses[PRODUCTION], settings.quality_margin, **kw
        )
    return _decide(step, final, results, served, labelled)


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
    if not labelled:
        reasons.append("no labelled request yet: online quality not judged")
    if unsure:
        reasons += [f"{n}: {results[n].reason}" for n in unsure]
        return Look(step, Verdict.INCONCLUSIVE, results, served, reasons)
    return Look(step, Verdict.PASS, results, served, reasons or ["every comparison passed"])
