"""The bag of little bootstraps: when it is used, and that it agrees with the row bootstrap."""

import numpy as np
import pytest
from scipy.special import expit

from ml_release.evaluation.compare import compare
from ml_release.stats import weighted_metric
from ml_release.stats.little import MIN_CLASS_ROWS, SUBSETS, little_plan
from ml_release.stats.paired import paired_bootstrap_delta

ROWS = 120_000


def two_models(n: int, seed: int, candidate_separation: float = 1.12, prevalence: float = 0.2):
    """Calibrated-ish scores of two correlated models of the same rows (as bench/evaluation.py)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(float)
    noise = rng.standard_normal((n, 2))
    baseline_noise, other = noise[:, 0], noise[:, 1]
    candidate_noise = 0.7 * baseline_noise + np.sqrt(1 - 0.49) * other
    candidate = expit(candidate_separation * y + candidate_noise - 1.9)
    baseline = expit(1.05 * y + baseline_noise - 1.9)
    return y, candidate, baseline


@pytest.fixture(scope="module")
def rows():
    return two_models(ROWS, seed=3)


def test_plan_sizes_subsets_for_the_rarer_class():
    plan = little_plan(1_000_000, 200_000, 1000)
    assert (plan.subsets, plan.size, plan.resamples) == (SUBSETS, 15849, 100)
    assert plan.method == "little_bootstrap(s=10, b=15849, B=1000)"
    rare = little_plan(1_000_000, 10_000, 1000)  # 1% positives: b grows to hold 250 of them
    assert rare.size == MIN_CLASS_ROWS * 100 == 25_000
    assert little_plan(1_000_000, 990_000, 1000).size == 25_000  # rare negatives alike
    assert little_plan(1_000_000, 2_000, 1000) is None  # 0.2%: 10 subsets of 125,000 rows


def test_no_plan_when_subsets_would_cover_half_the_rows_or_a_class_is_missing():
    assert little_plan(60_000, 100, 1000) is None  # 250 positives per subset: 150k rows each
    assert little_plan(1_000_000, 0, 1000) is None
    assert little_plan(1_000_000, 1_000_000, 1000) is None


@pytest.mark.parametrize("metric", ["pr_auc", "ece"])
def test_little_bootstrap_agrees_with_the_row_bootstrap(rows, metric):
    y, candidate, baseline = rows
    fn = weighted_metric(metric)
    full = paired_bootstrap_delta(y, candidate, baseline, fn, 0.95, 1000, seed=1)
    little = paired_bootstrap_delta(
        y, candidate, baseline, fn, 0.95, 1000, seed=1, little_above=50_000
    )
    assert full.method == "paired_bootstrap(B=1000)"
    assert little.method.startswith("little_bootstrap(s=10, ")
    assert little.delta == full.delta and little.draws.size == 1000
    half = (full.high - full.low) / 2
    # a 2.5% quantile of 1000 draws has a Monte Carlo standard error of ~4% of the half-width
    assert abs(little.low - full.low) < 0.25 * half
    assert abs(little.high - full.high) < 0.25 * half
    assert 0.8 < (little.high - little.low) / (full.high - full.low) < 1.25


def test_little_bootstrap_says_no_to_a_worse_candidate():
    y, candidate, baseline = two_models(ROWS, seed=4, candidate_separation=0.85)
    result = compare("pr_auc", y, candidate, baseline, confidence=0.95, little_above=50_000)
    assert result.method.startswith("little_bootstrap")
    assert result.delta < 0 and result.high < 0


def test_identical_models_have_a_zero_width_interval(rows):
    y, _, baseline = rows
    for metric in ("pr_auc", "ece"):
        result = compare(metric, y, baseline, baseline, confidence=0.95, little_above=50_000)
        assert result.method.startswith("little_bootstrap")
        assert (result.delta, result.low, result.high) == (0.0, 0.0, 0.0)


def test_seeded_and_only_above_the_threshold(rows):
    y, candidate, baseline = rows
    twice = [
        compare("ece", y, candidate, baseline, confidence=0.9, seed=7, little_above=50_000)
        for _ in range(2)
    ]
    assert np.array_equal(twice[0].draws, twice[1].draws)
    assert twice[0].low == twice[1].low and twice[0].high == twice[1].high
    small = compare("ece", y[:40_000], candidate[:40_000], baseline[:40_000], confidence=0.9,
                    little_above=50_000)  # fmt: skip
    assert small.method == "paired_bootstrap(B=1000)"
    never = compare("ece", y, candidate, baseline, confidence=0.9, little_above=None)
    assert never.method == "paired_bootstrap(B=1000)"


def test_cluster_resampling_never_takes_the_little_path(rows):
    y, candidate, baseline = rows
    groups = np.arange(y.size) // 3
    result = paired_bootstrap_delta(
        y, candidate, baseline, weighted_metric("pr_auc"), 0.95, 200, groups=groups,
        little_above=50_000,
    )  # fmt: skip
    assert result.method == "paired_bootstrap(B=200)"


def test_the_spec_setting_reaches_the_gates(tmp_path, rows):
    from ml_release.evaluation.data import EvalSet
    from ml_release.evaluation.run import judge
    from ml_release.spec import load_spec
    from tests.conftest import spec_dict, write_spec

    y, candidate, baseline = rows
    region = np.array(["a", "b"])[np.arange(y.size) % 2]
    ids = np.arange(y.size).astype(str)
    sets = {"holdout": EvalSet("holdout", ids, y, candidate, baseline, {"region": region}, False)}
    methods = {}
    for above in (50_000, None):
        data = spec_dict(
            gates=[{"name": "pr_auc_vs_baseline", "must_pass": True, "max_drop": 0.01}]
        )
        data["evaluation"] = {"little_bootstrap_above": above}
        spec = load_spec(write_spec(tmp_path, data))
        methods[above] = judge(spec.gates[0], sets, spec).method
    assert methods[50_000].startswith("little_bootstrap(s=10, ")
    assert methods[None].startswith("paired_bootstrap(B=1000)")


def test_threads_do_not_change_the_draws(rows, monkeypatch):
    from ml_release.stats import little

    y, candidate, baseline = rows
    plan = little_plan(y.size, int(y.sum()), 200)
    fn = weighted_metric("pr_auc")
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(little, "THREADS", threads)
        runs.append(little.little_bootstrap_deltas(y, candidate, baseline, fn, plan, seed=5))
    assert np.array_equal(runs[0], runs[1])
