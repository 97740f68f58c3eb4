"""Paired statistics against independent computations: sklearn, scipy, loops, simulation."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ml_release.gates.result import Verdict
from ml_release.stats import (
    Comparison,
    benjamini_hochberg,
    decide,
    decide_segments,
    delong_auc_delta,
    holm,
    paired_bootstrap_delta,
    paired_mean_delta,
    resample_weights,
    resampled,
    simultaneous_confidence,
    weighted_metric,
)
from ml_release.stats.weighted import BLOCK, CHUNK_ELEMENTS, confusion_cells, uniform_counts


def binormal(n, d_candidate, d_baseline, rho=0.5, prevalence=0.3, seed=0):
    """Labels and two correlated scores; AUC = Phi(d / sqrt(2)) for each model."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    noise = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    return y, d_candidate * y + noise[:, 0], d_baseline * y + noise[:, 1]


def probabilities(n=600, seed=1, decimals=None):
    y, c, b = binormal(n, 1.2, 0.9, seed=seed)
    c, b = 1 / (1 + np.exp(-c)), 1 / (1 + np.exp(-b))
    if decimals is not None:  # ties, and values on the ECE bin edges
        c, b = np.round(c, decimals), np.round(b, decimals)
    return y, c, b


def explicit_resamples(n, b, seed=5):
    idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
    return idx, np.array([np.bincount(i, minlength=n) for i in idx], dtype=float)


def loop_ece(y, p, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = (p > edges[b]) & (p <= edges[b + 1]) if b else (p <= edges[1])
        total += abs(y[in_bin].sum() - p[in_bin].sum())
    return total / y.size


SKLEARN = {
    "precision": lambda y, s: precision_score(y, s >= 0.5),
    "recall": lambda y, s: recall_score(y, s >= 0.5),
    "f1": lambda y, s: f1_score(y, s >= 0.5),
    "positive_rate": lambda y, s: np.mean(s >= 0.5),
    "pr_auc": average_precision_score,
    "ece": loop_ece,
}


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_delong_aucs_equal_sklearn_with_and_without_ties(decimals):
    y, c, b = probabilities(800, seed=3, decimals=decimals)
    result = delong_auc_delta(y.astype(bool), c, b)
    assert result.candidate == pytest.approx(roc_auc_score(y, c), abs=1e-12)
    assert result.baseline == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.delta == pytest.approx(result.candidate - result.baseline)


def test_delong_variance_equals_the_quadratic_definition():
    y, c, b = probabilities(300, seed=4, decimals=2)
    pos, neg = y == 1, y == 0
    components = []
    for s in (c, b):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        components.append((psi.mean(axis=1), psi.mean(axis=0)))
    s10 = np.cov(components[0][0], components[1][0])
    s01 = np.cov(components[0][1], components[1][1])
    cov = s10 / pos.sum() + s01 / neg.sum()
    expected_se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert delong_auc_delta(y, c, b).std_error == pytest.approx(expected_se, rel=1e-10)


def test_delong_interval_agrees_with_a_loop_bootstrap():
    y, c, b = binormal(1500, 1.1, 0.9, seed=8)
    result = delong_auc_delta(y, c, b, confidence=0.9)
    idx = np.random.default_rng(9).integers(0, y.size, size=(400, y.size))
    deltas = [roc_auc_score(y[i], c[i]) - roc_auc_score(y[i], b[i]) for i in idx]
    assert np.std(deltas, ddof=1) == pytest.approx(result.std_error, rel=0.15)
    low, high = np.quantile(deltas, [0.05, 0.95])
    assert result.low == pytest.approx(low, abs=0.3 * result.std_error)
    assert result.high == pytest.approx(high, abs=0.3 * result.std_error)


def test_delong_intervals_cover_the_true_delta():
    d_c, d_b = 1.2, 1.0
    truth = stats.norm.cdf(d_c / np.sqrt(2)) - stats.norm.cdf(d_b / np.sqrt(2))
    covered = [
        (r := delong_auc_delta(*binormal(2000, d_c, d_b, rho=0.6, seed=s))).low <= truth <= r.high
        for s in range(300)
    ]
    assert 0.92 <= np.mean(covered) <= 0.98


@pytest.mark.reliability("input")
def test_delong_is_undefined_with_one_class():
    result = delong_auc_delta(np.zeros(50), np.arange(50.0), np.arange(50.0))
    assert not result.defined and "positives" in result.undefined_reason


@pytest.mark.parametrize("name", list(SKLEARN))
def test_weighted_metric_equals_sklearn_on_the_same_resamples(name):
    y, c, _ = probabilities(500, seed=6, decimals=1 if name in ("pr_auc", "ece") else None)
    idx, weights = explicit_resamples(y.size, 25)
    vectorized = weighted_metric(name)(y, c, weights)
    looped = [SKLEARN[name](y[i], c[i]) for i in idx]
    np.testing.assert_allclose(vectorized, looped, rtol=1e-12, atol=1e-12)


def test_ece_bins_are_those_of_sklearn_calibration_curve():
    y, c, _ = probabilities(2000, seed=7, decimals=1)
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], c)
    occupied = np.bincount(bins, minlength=10) > 0
    prob_true, prob_pred = calibration_curve(y, c, n_bins=10, strategy="uniform")
    counts = np.bincount(bins, minlength=10)[occupied]
    expected = np.sum(counts * np.abs(prob_true - prob_pred)) / y.size
    assert weighted_metric("ece")(y, c, np.ones(y.size))[0] == pytest.approx(expected)


@pytest.mark.parametrize("name", ["precision", "pr_auc"])
def test_paired_bootstrap_equals_a_loop_over_its_own_resamples(name):
    y, c, b = probabilities(400, seed=2, decimals=2)
    rows_only = replace(weighted_metric(name), confusion=None)  # precision: not the cell path
    result = paired_bootstrap_delta(
        y, c, b, rows_only, confidence=0.9, n_resamples=120, seed=3, chunk_size=7
    )
    rows = np.arange(y.size)
    looped = []
    for chunk in resample_weights(y.size, 120, seed=3, chunk_size=7):
        for w in chunk:
            i = np.repeat(rows, w.astype(int))
            looped.append(SKLEARN[name](y[i], c[i]) - SKLEARN[name](y[i], b[i]))
    np.testing.assert_allclose(result.draws, looped, atol=1e-12)
    assert (result.low, result.high) == pytest.approx(tuple(np.quantile(looped, [0.05, 0.95])))
    assert result.delta == pytest.approx(SKLEARN[name](y, c) - SKLEARN[name](y, b))
    assert result.method == "paired_bootstrap(B=120)" and result.metric == name


def test_bootstrap_of_auc_agrees_with_delong():
    y, c, b = binormal(1500, 1.1, 0.9, seed=12)
    boot = paired_bootstrap_delta(y, c, b, resampled(roc_auc_score), n_resamples=300)
    delong = delong_auc_delta(y, c, b)
    assert boot.delta == pytest.approx(delong.delta)
    assert boot.low == pytest.approx(delong.low, abs=0.3 * delong.std_error)
    assert boot.high == pytest.approx(delong.high, abs=0.3 * delong.std_error)


def test_resample_weights_are_chunked_multinomial_counts():
    chunk = next(resample_weights(1_000_000, 1000))
    assert chunk.shape == (CHUNK_ELEMENTS // 1_000_000, 1_000_000)
    assert (chunk.sum(axis=1) == 1_000_000).all()
    chunks = list(resample_weights(300, 130, seed=1))
    assert sum(len(c) for c in chunks) == 130 and all(len(c) <= 50 for c in chunks)


def test_group_bootstrap_moves_whole_groups():
    groups = np.repeat(np.arange(40), 5)
    for chunk in resample_weights(groups.size, 20, seed=4, groups=groups):
        per_group = chunk.reshape(len(chunk), 40, 5)
        assert (per_group == per_group[:, :, :1]).all()
        assert (per_group[:, :, 0].sum(axis=1) == 40).all()


THRESHOLD_METRICS = ["precision", "recall", "f1", "positive_rate"]


def rows_only(name):
    """The same metric without its ConfusionRule: the row bootstrap."""
    return replace(weighted_metric(name), confusion=None)


def test_confusion_cells_count_rows_by_label_and_both_flags():
    y, c, b = probabilities(3000, seed=40)
    cells = confusion_cells(y, c >= 0.5, b >= 0.5)
    expected = [
        np.sum((y == label) & ((c >= 0.5) == cand) & ((b >= 0.5) == base))
        for label in (0, 1)
        for cand in (False, True)
        for base in (False, True)
    ]
    np.testing.assert_array_equal(cells, expected)


@pytest.mark.parametrize("name", THRESHOLD_METRICS)
def test_cell_path_point_estimates_equal_sklearn(name):
    y, c, b = probabilities(5000, seed=41)
    result = paired_bootstrap_delta(y, c, b, weighted_metric(name), n_resamples=200)
    assert result.candidate == pytest.approx(SKLEARN[name](y, c), rel=1e-12)
    assert result.baseline == pytest.approx(SKLEARN[name](y, b), rel=1e-12)
    assert result.delta == pytest.approx(SKLEARN[name](y, c) - SKLEARN[name](y, b), abs=1e-12)
    assert result.positives == y.sum() and result.method == "paired_bootstrap(B=200)"


@pytest.mark.parametrize("name", THRESHOLD_METRICS)
def test_cell_path_interval_agrees_with_the_row_bootstrap(name):
    y, c, b = probabilities(20_000, seed=43)
    cells = paired_bootstrap_delta(y, c, b, weighted_metric(name), n_resamples=2000, seed=1)
    rows = paired_bootstrap_delta(y, c, b, rows_only(name), n_resamples=2000, seed=2)
    assert cells.delta == pytest.approx(rows.delta, abs=1e-15)
    assert cells.low == pytest.approx(rows.low, abs=0.005)
    assert cells.high == pytest.approx(rows.high, abs=0.005)
    assert np.std(cells.draws) == pytest.approx(np.std(rows.draws), rel=0.1)
    assert stats.ks_2samp(cells.draws, rows.draws).pvalue > 0.01  # one distribution


def test_cell_path_draws_are_a_seeded_multinomial_over_the_cells():
    y, c, b = probabilities(2000, seed=42)
    result = paired_bootstrap_delta(y, c, b, weighted_metric("precision"), n_resamples=500, seed=7)
    cells = confusion_cells(y, c >= 0.5, b >= 0.5)
    assert (cells > 0).all()
    drawn = np.random.default_rng(7).multinomial(2000, cells / 2000, size=500)
    tp_c, pp_c = drawn[:, 6] + drawn[:, 7], drawn[:, [2, 3, 6, 7]].sum(axis=1)
    tp_b, pp_b = drawn[:, 5] + drawn[:, 7], drawn[:, [1, 3, 5, 7]].sum(axis=1)
    np.testing.assert_allclose(result.draws, tp_c / pp_c - tp_b / pp_b, atol=1e-15)


@pytest.mark.parametrize("name", ["precision", "recall", "f1"])
def test_cell_path_finds_a_clearly_worse_candidate(name):
    y, c, b = binormal(20_000, 0.6, 1.4, seed=44)  # the candidate separates far less
    result = paired_bootstrap_delta(y, c, b, weighted_metric(name), n_resamples=1000)
    assert result.high < 0 and result.p_value < 0.01
    assert decide(result, greater_is_better=True, max_drop=0.01).verdict is Verdict.FAIL


def test_groups_take_the_row_path_for_threshold_metrics():
    y, c, b = probabilities(500, seed=46)
    singletons = paired_bootstrap_delta(
        y, c, b, weighted_metric("f1"), n_resamples=50, groups=np.arange(500)
    )
    rows = paired_bootstrap_delta(y, c, b, rows_only("f1"), n_resamples=50)
    np.testing.assert_array_equal(singletons.draws, rows.draws)


@pytest.mark.parametrize("metric", [weighted_metric("precision"), rows_only("precision")])
def test_bootstrap_gives_up_when_many_resamples_are_undefined(metric):
    y, _, b = probabilities(300, seed=45)
    c = np.where(np.arange(300) == 0, 0.9, 0.1)  # one predicted positive: absent in ~37%
    result = paired_bootstrap_delta(y, c, b, metric, n_resamples=300)
    assert result.candidate in (0.0, 1.0)
    assert not result.defined and "resamples" in result.undefined_reason


def test_block_draws_are_multinomial_and_do_not_depend_on_chunking():
    n, resamples = 3 * BLOCK + 1234, 300  # three full blocks and a partial one
    starts = np.arange(0, n, BLOCK)
    shares = np.diff(np.append(starts, n)) / n
    totals, frequencies = [], np.zeros(5)
    for chunk in resample_weights(n, resamples, seed=8):
        assert (chunk.sum(axis=1) == n).all()
        totals.append(np.add.reduceat(chunk, starts, axis=1))
        frequencies += np.bincount(np.minimum(chunk, 4).astype(int).ravel(), minlength=5)
    # each row's count is Binomial(n, 1/n)
    pmf = stats.binom.pmf(np.arange(4), n, 1 / n)
    expected = np.append(pmf, 1 - pmf.sum()) * n * resamples
    assert stats.chisquare(frequencies, expected).pvalue > 0.001
    # block totals: mean n s_b, covariance n (diag(s) - s s^T) of Multinomial(n; s)
    totals = np.vstack(totals)
    covariance = n * (np.diag(shares) - np.outer(shares, shares))
    np.testing.assert_allclose(totals.mean(axis=0), n * shares, rtol=0.01)
    np.testing.assert_allclose(np.cov(totals.T), covariance, atol=0.25 * covariance.max())
    few = np.vstack(list(resample_weights(n, 7, seed=8, chunk_size=3)))
    np.testing.assert_array_equal(few, np.vstack(list(resample_weights(n, 7, seed=8))))


@pytest.mark.parametrize("name", ["pr_auc", "ece", "recall"])
def test_compact_counts_give_the_same_replicates_as_float_weights(name):
    y, c, b = probabilities(3000, seed=47, decimals=2)
    groups = np.arange(3000) // 3 if name == "recall" else None  # recall: the row path
    compact = paired_bootstrap_delta(y, c, b, weighted_metric(name), n_resamples=60, groups=groups)
    floats = replace(weighted_metric(name), takes_counts=False)
    reference = paired_bootstrap_delta(y, c, b, floats, n_resamples=60, groups=groups)
    np.testing.assert_allclose(compact.draws, reference.draws, rtol=0, atol=1e-15)
    chunk = next(resample_weights(3000, 5, seed=2, dtype=np.uint8))
    assert chunk.dtype == np.uint8
    np.testing.assert_array_equal(chunk, next(resample_weights(3000, 5, seed=2)))


class AlwaysFirst:
    """A generator whose uniform draws all pick unit 0: the worst case for compact counts."""

    def multinomial(self, n, shares):
        return np.random.default_rng(0).multinomial(n, shares)

    def integers(self, low, high, size, dtype=np.int64):
        return np.zeros(size, dtype=dtype)


def test_compact_counts_raise_instead_of_wrapping():
    with pytest.raises(OverflowError, match="uint8"):
        uniform_counts(AlwaysFirst(), 300, np.empty((1, 300), dtype=np.uint8))
    wide = uniform_counts(AlwaysFirst(), 300, np.empty((1, 300)))
    assert wide[0, 0] == 300 and wide.sum() == 300


def test_bootstrap_reports_an_undefined_metric():
    y, c, b = probabilities(200)
    result = paired_bootstrap_delta(y, c, b, weighted_metric("precision", threshold=2.0))
    assert not result.defined and "undefined" in result.undefined_reason


def test_paired_mean_delta_matches_scipy_ttest_rel():
    rng = np.random.default_rng(13)
    base = rng.exponential(0.5, 700)
    cand = base + rng.normal(0.02, 0.1, 700)
    result = paired_mean_delta(cand, base, confidence=0.9, metric="log_loss")
    reference = stats.ttest_rel(cand, base)
    interval = reference.confidence_interval(0.9)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high))
    assert result.delta == pytest.approx(cand.mean() - base.mean())


def test_holm_and_bh_on_a_hand_computed_example():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02, np.nan])
    assert holm([0.5, 0.6])[1] == 1.0


def test_holm_and_bh_match_their_definitions_on_random_p_values():
    p = np.random.default_rng(14).random(25) ** 3
    m, ranked = p.size, np.sort(p)
    rank = {v: i + 1 for i, v in enumerate(ranked)}
    naive_holm = [
        max(min(1, (m - j + 1) * ranked[j - 1]) for j in range(1, rank[v] + 1)) for v in p
    ]
    naive_bh = [min(min(1, m * ranked[j - 1] / j) for j in range(rank[v], m + 1)) for v in p]
    np.testing.assert_allclose(holm(p), naive_holm)
    np.testing.assert_allclose(benjamini_hochberg(p), naive_bh)


def test_simultaneous_confidence():
    assert simultaneous_confidence(0.95, 5) == pytest.approx(0.99)
    assert simultaneous_confidence(0.95, 5, "holm") == pytest.approx(0.99)
    assert simultaneous_confidence(0.95, 5, "sidak") == pytest.approx(0.95 ** (1 / 5))
    with pytest.raises(ValueError, match="unknown adjustment"):
        simultaneous_confidence(0.95, 5, "tukey")


def interval(low, high, baseline=0.8):
    mid = (low + high) / 2
    se = (high - low) / (2 * stats.norm.ppf(0.975))
    return Comparison(
        "roc_auc", baseline + mid, baseline, mid, low, high, 0.95, "delong", 1000, std_error=se
    )


@pytest.mark.parametrize(
    ("low", "high", "greater_is_better", "expected"),
    [
        (-0.03, -0.02, True, Verdict.FAIL),
        (-0.01, 0.01, True, Verdict.PASS),
        (-0.02, 0.0, True, Verdict.INCONCLUSIVE),
        (0.02, 0.03, False, Verdict.FAIL),
        (-0.01, 0.01, False, Verdict.PASS),
        (0.0, 0.02, False, Verdict.INCONCLUSIVE),
    ],
)
def test_verdict_reads_the_interval_against_the_margin(low, high, greater_is_better, expected):
    decision = decide(interval(low, high), greater_is_better=greater_is_better, max_drop=0.01)
    assert decision.verdict is expected
    assert decision.interval == (low, high) and decision.margin == 0.01
    assert (decision.p_worse < 0.025) == (expected is Verdict.FAIL)


def test_relative_margin_scales_with_the_baseline():
    comparison = interval(-0.03, -0.02, baseline=0.5)
    decision = decide(comparison, greater_is_better=True, max_relative_drop=0.1)
    assert decision.margin == pytest.approx(0.05) and decision.verdict is Verdict.PASS
    with pytest.raises(ValueError, match="exactly one"):
        decide(interval(-0.03, -0.02), greater_is_better=True, max_drop=0.1, max_relative_drop=0.1)


def test_delong_verdicts_on_data():
    worse = delong_auc_delta(*binormal(4000, 0.6, 1.2, seed=20))
    same = delong_auc_delta(*binormal(20000, 1.0, 1.0, rho=0.95, seed=21))
    noisy = delong_auc_delta(*binormal(150, 0.95, 1.0, seed=22))
    assert decide(worse, greater_is_better=True, max_drop=0.01).verdict is Verdict.FAIL
    assert decide(same, greater_is_better=True, max_drop=0.01).verdict is Verdict.PASS
    assert decide(noisy, greater_is_better=True, max_drop=0.01).verdict is Verdict.INCONCLUSIVE


def test_log_loss_verdicts_are_mirrored():
    y, c, _ = probabilities(5000, seed=23)
    worse_p, same_p = np.clip(c + 0.2, 0.01, 0.99), c * 0.999 + 0.0005

    def row_log_loss(p):
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    worse = paired_mean_delta(row_log_loss(worse_p), row_log_loss(c), metric="log_loss")
    same = paired_mean_delta(row_log_loss(same_p), row_log_loss(c), metric="log_loss")
    assert worse.candidate == pytest.approx(log_loss(y, worse_p))
    assert decide(worse, greater_is_better=False, max_drop=0.01).verdict is Verdict.FAIL
    assert decide(same, greater_is_better=False, max_drop=0.01).verdict is Verdict.PASS


def test_low_support_and_undefined_metrics_are_inconclusive():
    low = decide(interval(-0.01, 0.01), greater_is_better=True, max_drop=0.01, min_support=5000)
    assert low.verdict is Verdict.INCONCLUSIVE and "min_support 5000" in low.reason
    one_class = delong_auc_delta(np.zeros(50), np.arange(50.0), np.arange(50.0))
    undefined = decide(one_class, greater_is_better=True, max_drop=0.01)
    assert undefined.verdict is Verdict.INCONCLUSIVE and "positives" in undefined.reason


def test_segment_verdicts_need_bonferroni_intervals_and_report_holm():
    segments = {
        f"region_{i}": binormal(3000, 1.0 - 0.3 * (i == 0), 1.0, seed=30 + i) for i in range(4)
    }
    segments["tiny"] = binormal(100, 1.0, 1.0, seed=40)
    level = simultaneous_confidence(0.95, 4)  # the tiny segment will not be judged
    comparisons = {k: delong_auc_delta(*v, confidence=level) for k, v in segments.items()}
    decisions = decide_segments(comparisons, greater_is_better=True, max_drop=0.01, min_support=500)
    assert decisions["region_0"].verdict is Verdict.FAIL
    assert decisions["region_0"].confidence == pytest.approx(0.9875)
    assert (
        decisions["tiny"].verdict is Verdict.INCONCLUSIVE
        and "min_support" in decisions["tiny"].reason
    )
    family = [d for name, d in decisions.items() if name != "tiny"]
    np.testing.assert_allclose(
        [d.p_worse_adjusted for d in family], holm([d.p_worse for d in family])
    )
    assert decisions["region_0"].p_worse_adjusted < 0.025
    narrow = {k: delong_auc_delta(*v, confidence=0.95) for k, v in segments.items()}
    with pytest.raises(ValueError, match="simultaneous_confidence"):
        decide_segments(narrow, greater_is_better=True, max_drop=0.01)


def test_bootstrap_depth_leaves_twenty_draws_beyond_each_end():
    from ml_release.evaluation.compare import compare
    from ml_release.stats import resamples_for, simultaneous_confidence

    assert resamples_for(0.95, 1000) == 1000  # 25 draws per tail already
    assert resamples_for(simultaneous_confidence(0.95, 10), 1000) == 8000
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=4000) < 0.3).astype(int)
    cand, base = rng.uniform(size=4000), rng.uniform(size=4000)
    level = simultaneous_confidence(0.95, 10)
    c = compare("pr_auc", y, cand, base, confidence=level, resamples=1000)
    assert c.draws.size == 8000 and c.method == "paired_bootstrap(B=8000)"
    assert (c.draws < c.low).sum() >= 20 and (c.draws > c.high).sum() >= 20
    with pytest.raises(ValueError, match="judge fewer segments"):
        resamples_for(simultaneous_confidence(0.95, 1000), 1000)


def _busy_machine(rng, n: int, slowdown: float = 1.0):
    """Interleaved latencies of two servers: a shared, slowly varying machine load, heavy tails.

    The load multiplies both servers' latency at the same steps (an AR(1) log factor), as on a
    machine other jobs share; each request adds its own log-normal noise.
    """
    load = np.zeros(n)
    shocks = rng.normal(0, 0.2, n)
    for k in range(1, n):
        load[k] = 0.9 * load[k - 1] + shocks[k]
    candidate = np.exp(np.log(12) + load + rng.normal(0, 0.3, n)) * slowdown
    production = np.exp(np.log(12) + load + rng.normal(0, 0.3, n))
    return candidate, production


def test_p99_ratio_interval_covers_the_truth_on_a_busy_machine():
    from ml_release.stats.quantile import percentile_ratio

    rng = np.random.default_rng(5)
    covered = []
    for _ in range(200):
        c, p = _busy_machine(rng, 300, slowdown=1.1)
        ratio = percentile_ratio(c, p, 99, 0.95, resamples=1000, seed=int(rng.integers(1e9)))
        covered.append(ratio.low <= 0.1 <= ratio.high)  # the true p99 ratio is 1.1 exactly
    assert 0.91 <= np.mean(covered) <= 0.99, np.mean(covered)
    with pytest.raises(ValueError, match="at least 20 paired"):
        percentile_ratio(np.ones(5), np.ones(5))


def _latency_gate(candidate_ms, production_ms, **params):
    from ml_release.serving.gates import latency_vs_baseline
    from ml_release.serving.measure import ServerMeasurement
    from ml_release.serving.run import ServingReport
    from ml_release.spec import GateSpec

    measurements = {}
    for role, ms in (("candidate", candidate_ms), ("production", production_ms),
                     ("production_replica", production_ms)):  # fmt: skip
        m = ServerMeasurement(role, role, 1.0)
        m.latencies_ms, m.latency_steps = list(ms), list(range(len(ms)))
        measurements[role] = m
    gate = GateSpec.model_validate({"name": "serving_latency_p99_vs_baseline", **params})
    return latency_vs_baseline(gate, ServingReport(measurements, None, {}))


def test_p99_gate_passes_a_twin_and_fails_a_slowdown_whatever_the_machine_does():
    rng = np.random.default_rng(8)
    twin = _latency_gate(*_busy_machine(rng, 1000), max_increase=0.25)
    assert twin.verdict is Verdict.PASS, twin.summary
    assert twin.interval[1] <= 0.25 and twin.draws >= 2000
    slow = _latency_gate(*_busy_machine(rng, 1000, slowdown=1.6), max_increase=0.25)
    assert slow.verdict is Verdict.FAIL and slow.interval[0] > 0.25, slow.summary
    few = _latency_gate(*_busy_machine(rng, 60, slowdown=1.2), max_increase=0.25)
    assert few.verdict is Verdict.INCONCLUSIVE and "(serving.requests)" in few.summary


def test_an_inconclusive_shadow_p99_names_the_shadow_setting_that_sends_more():
    from ml_release.serving.gates import p99_verdict
    from ml_release.spec import GateSpec

    candidate, production = _busy_machine(np.random.default_rng(8), 60)
    gate = GateSpec.model_validate({"name": "shadow_latency_vs_baseline", "max_increase": 0.1})
    result = p99_verdict(
        gate, candidate, production, 0.0, gate.params, "m", [], "odd and even", "shadow.requests"
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "(shadow.requests)" in result.summary and "serving.requests" not in result.summary
