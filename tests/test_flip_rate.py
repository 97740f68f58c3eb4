"""segment_flip_rate on small segments: pooled by default, never silently skipped."""

import numpy as np
import pytest

from ml_release.gates.result import Verdict
from ml_release.shadow.gates import judge
from ml_release.shadow.replay import Answers
from ml_release.shadow.run import CANDIDATE, PRODUCTION, ShadowReport
from ml_release.spec import parse_spec
from tests.conftest import PROJECT, spec_dict

BIG, SMALL_GROUPS, SMALL = 2000, 8, 40  # eight districts of 40 requests: each below 100


def _answers(role: str, scores: np.ndarray) -> Answers:
    n = len(scores)
    return Answers(
        role=role,
        version=role,
        status=["200"] * n,
        latency_ms=np.full(n, 5.0),
        proba=np.column_stack([1 - scores, scores]),
        columns=["proba_0", "proba_1"],
        classes=[0, 1],
    )


def _report(flip_small: float, seed: int = 0) -> ShadowReport:
    """Production and a candidate that agree on the big segment and flip `flip_small` of the
    requests of every small one."""
    rng = np.random.default_rng(seed)
    district = np.array(
        ["big"] * BIG + [f"d{i}" for i in range(SMALL_GROUPS) for _ in range(SMALL)]
    )
    production = rng.uniform(0.0, 1.0, len(district))
    candidate = production.copy()
    small = np.flatnonzero(district != "big")
    flipped = rng.choice(small, int(flip_small * len(small)), replace=False)
    candidate[flipped] = 1.0 - candidate[flipped]  # across the 0.5 threshold
    return ShadowReport(
        requests=None,  # type: ignore[arg-type]  # the gate reads answers and segments only
        answers={
            CANDIDATE: _answers(CANDIDATE, candidate),
            PRODUCTION: _answers(PRODUCTION, production),
        },
        segments={"district": district},
        threshold=0.5,
    )


def _gate(**params):
    entry = {"name": "segment_flip_rate", "max_flip_rate": 0.1, "min_support": 100, **params}
    spec = parse_spec(spec_dict(gates=[*spec_dict()["gates"], entry]), PROJECT / "release.yaml")
    return spec, spec.gates[-1]


@pytest.mark.reliability("input")
def test_flips_confined_to_small_segments_are_caught_pooled():
    spec, gate = _gate()
    result = judge(gate, _report(flip_small=0.5), spec)
    assert result.verdict is Verdict.FAIL, result.summary
    assert "small segments" in result.summary and "judged pooled" in result.summary


def test_small_segments_without_flips_pass_pooled():
    spec, gate = _gate()
    result = judge(gate, _report(flip_small=0.0), spec)
    assert result.verdict is Verdict.PASS, result.summary


@pytest.mark.parametrize(
    ("policy", "verdict"), [("warn", Verdict.PASS), ("block", Verdict.INCONCLUSIVE)]
)
def test_other_policies_list_small_segments_or_block(policy, verdict):
    spec, gate = _gate(small_segments=policy)
    result = judge(gate, _report(flip_small=0.5), spec)
    # The big segment alone has no flips, and "all" dilutes the small ones below the limit.
    assert result.verdict is verdict, result.summary
    assert f"{SMALL_GROUPS} segments below min_support not judged" in result.summary
