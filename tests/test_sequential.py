"""Anytime-valid canary tests: simulation with known truth, brute force, and the decision rule."""

import math

import numpy as np
import pytest
from scipy.special import betaln

from ml_release.gates.result import Verdict
from ml_release.stats.sequential import (
    SequentialResult,
    error_rate_bounds,
    error_rate_sequence,
    mean_bounds,
    mean_sequence,
)

ALPHA = 0.05
Z = 1.959963984540054  # the naive rule: a fixed-sample 95 % interval at every look
# a canary of 2,000 requests per step at 5 / 25 / 50 / 100 % to the candidate: 4 looks
CAND = np.array([100, 500, 1000, 2000])
PROD = 2000 - CAND
N_C, N_P = np.cumsum(CAND), np.cumsum(PROD)
TUNED = 4000  # expected requests per arm at the final look (3,600 and 4,400)


def binomial_canaries(rng, p_c, p_p, canaries=300, cand=CAND, prod=PROD):
    """Cumulative errors per look, shape (canaries, looks), for both arms."""
    errors_c = np.cumsum(rng.binomial(cand, p_c, size=(canaries, cand.size)), axis=1)
    errors_p = np.cumsum(rng.binomial(prod, p_p, size=(canaries, prod.size)), axis=1)
    return errors_c, errors_p


def wald(errors_c, n_c, errors_p, n_p):
    """The naive fixed-sample interval of p_c - p_p (unpooled Wald, 95 %)."""
    rc, rp = errors_c / n_c, errors_p / n_p
    half = Z * np.sqrt(rc * (1 - rc) / n_c + rp * (1 - rp) / n_p)
    return rc - rp - half, rc - rp + half


def cumulative_moments(x, ends):
    """Mean and sample variance of x[..., :end] for every end."""
    zero = np.zeros((*x.shape[:-1], 1))
    s1 = np.concatenate([zero, np.cumsum(x, axis=-1)], axis=-1)[..., ends]
    s2 = np.concatenate([zero, np.cumsum(x * x, axis=-1)], axis=-1)[..., ends]
    mean = s1 / ends
    return mean, (s2 - ends * mean**2) / (ends - 1)


def mean_canaries(rng, draw, shift=0.0, canaries=300, cand=CAND, prod=PROD):
    """Moments per look of a per-request metric; the candidate's values are shifted by `shift`."""
    x_c = draw(rng, (canaries, cand.sum())) + shift
    x_p = draw(rng, (canaries, prod.sum()))
    m_c, v_c = cumulative_moments(x_c, np.cumsum(cand))
    m_p, v_p = cumulative_moments(x_p, np.cumsum(prod))
    return m_c, v_c, m_p, v_p


def normal(rng, size):
    return rng.normal(0.0, 1.0, size)


def lognormal(rng, size):  # skewed: mean e^0.5, the kind of metric raw latency is
    return rng.lognormal(0.0, 1.0, size)


def brute_force_bounds(errors_c, n_c, errors_p, n_p, alpha=ALPHA, tuned_n=TUNED, k=2500):
    """The projection of {log M_c + log M_p < log(1/alpha)} on p_c - p_p, on a dense 2-D grid.

    Written from the definition, in rate space (not log-odds), with the same prior: the test
    of the module's search. Grid points are inside the region, so these bounds are at most as
    wide as the exact ones.
    """
    budget = 2 * math.log(1 / alpha)
    kappa = tuned_n / (budget + math.log1p(budget)) - 1

    def log_e(p, e, n):
        a, b = kappa * p, kappa * (1 - p)
        return betaln(a + e, b + n - e) - betaln(a, b) - e * np.log(p) - (n - e) * np.log1p(-p)

    coarse = np.linspace(1e-9, 1 - 1e-9, 400001)
    values = [log_e(coarse, errors_c, n_c), log_e(coarse, errors_p, n_p)]

    def grid(arm):  # where the arm's log M leaves room for the other arm's minimum
        inside = coarse[values[arm] < math.log(1 / alpha) - values[1 - arm].min()]
        step = coarse[1] - coarse[0]
        return np.linspace(max(1e-9, inside[0] - step), min(1 - 1e-9, inside[-1] + step), k)

    a, b = grid(0), grid(1)
    inside = log_e(a, errors_c, n_c)[:, None] + log_e(b, errors_p, n_p)[None, :]
    inside = inside < math.log(1 / alpha)
    diff = a[:, None] - b[None, :]
    return diff[inside].min(), diff[inside].max()


# --- no data, validation, the decision rule ------------------------------------------------


@pytest.mark.parametrize("final", [False, True])
def test_no_data_on_an_arm_is_inconclusive_never_a_pass(final):
    results = [
        error_rate_sequence(0, 0, 0, 5000, margin=0.005, final=final),
        error_rate_sequence(0, 20000, 0, 0, margin=0.005, final=final),
        error_rate_sequence(0, 0, 0, 0, margin=0.005, final=final),
        mean_sequence(np.array([]), np.ones(500) + np.arange(500), margin=1.0, final=final),
        mean_sequence(np.arange(500.0), np.array([]), margin=1.0, final=final),
    ]
    for r in results:
        assert r.decision == Verdict.INCONCLUSIVE
        assert "no requests" in r.reason
        assert math.isnan(r.estimate) and math.isnan(r.lower) and math.isnan(r.upper)
    # 0 errors in 20,000 candidate requests would be a valid pass against any production rate,
    # but with no production data the controller gets no verdict, by design
    assert results[1].n_candidate == 20000 and results[1].n_production == 0
    lower, upper = error_rate_bounds([0, 3], [0, 100], [1, 0], [100, 0])
    assert np.isnan(lower).all() and np.isnan(upper).all()


def test_too_few_requests_for_the_asymptotic_mean_interval():
    rng = np.random.default_rng(0)
    r = mean_sequence(rng.normal(5, 1, 29), rng.normal(0, 1, 500), margin=0.1)
    assert r.decision == Verdict.INCONCLUSIVE and "min_n=30" in r.reason
    assert mean_sequence(rng.normal(5, 1, 30), rng.normal(0, 1, 500), margin=0.1).abort
    same = mean_sequence(np.full(100, 2.0), np.full(100, 2.0), margin=0.1, final=True)
    assert same.decision == Verdict.INCONCLUSIVE and "constant" in same.reason


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="exceed"):
        error_rate_sequence(11, 10, 0, 10, margin=0.01)
    with pytest.raises(ValueError, match="whole numbers"):
        error_rate_sequence(1.5, 10, 0, 10, margin=0.01)
    with pytest.raises(ValueError, match="whole numbers"):
        error_rate_bounds(-1, 10, 0, 10)
    with pytest.raises(ValueError, match="margin"):
        error_rate_sequence(1, 10, 0, 10, margin=-0.01)
    with pytest.raises(ValueError, match="alpha"):
        error_rate_sequence(1, 10, 0, 10, margin=0.01, alpha=1.0)
    with pytest.raises(ValueError, match="tuned_n"):
        error_rate_sequence(1, 10, 0, 10, margin=0.01, tuned_n=5)
    with pytest.raises(ValueError, match="NaN"):
        mean_sequence(np.array([1.0, np.nan] * 20), np.ones(40), margin=0.1)
    with pytest.raises(ValueError, match="1-D"):
        mean_sequence(np.ones((40, 2)), np.ones(40), margin=0.1)


def test_pass_only_at_the_final_look_and_fail_at_any_look():
    # 0.5 % vs 0.5 % on 20,000 requests each: the interval lies below a 1-point margin
    early = error_rate_sequence(100, 20000, 100, 20000, margin=0.01, final=False)
    last = error_rate_sequence(100, 20000, 100, 20000, margin=0.01, final=True)
    assert early.upper < 0.01 and last.upper < 0.01
    assert early.decision == Verdict.INCONCLUSIVE and "continue" in early.reason
    assert last.decision == Verdict.PASS and not last.abort
    # 3 % vs 0.2 %: abort at a non-final look
    worse = error_rate_sequence(15, 500, 3, 1500, margin=0.005)
    assert worse.decision == Verdict.FAIL and worse.abort and worse.lower > 0.005
    assert "abort" in worse.reason and worse.method == "beta_binomial_mixture(tuned_n=5000)"
    # a straddling interval at the final look is inconclusive, not pass
    close = error_rate_sequence(40, 4000, 30, 4000, margin=0.0025, final=True)
    assert close.lower <= 0.0025 <= close.upper and close.decision == Verdict.INCONCLUSIVE
    assert isinstance(close, SequentialResult) and close.estimate == pytest.approx(0.0025)


def test_sequence_functions_match_the_vectorized_bounds():
    rng = np.random.default_rng(3)
    e_c, e_p = binomial_canaries(rng, 0.01, 0.005, canaries=5)
    lower, upper = error_rate_bounds(e_c, N_C, e_p, N_P, tuned_n=TUNED)
    for i in range(5):
        for look in range(4):
            args = (int(e_c[i, look]), int(N_C[look]), int(e_p[i, look]), int(N_P[look]))
            r = error_rate_sequence(*args, margin=0.004, tuned_n=TUNED)
            assert (r.lower, r.upper) == (lower[i, look], upper[i, look])
            assert r.abort == (lower[i, look] > 0.004)
    x_c, x_p = rng.lognormal(0, 1, 700), rng.lognormal(0.2, 1, 900)
    m = mean_sequence(x_c, x_p, margin=0.1, relative=True)
    lo, hi = mean_bounds(
        700, x_c.mean(), x_c.var(ddof=1), 900, x_p.mean(), x_p.var(ddof=1), relative=True
    )
    assert (m.lower, m.upper) == (float(lo), float(hi)) and m.contrast == "relative"


# --- exactness of the error-rate region -------------------------------------------------------


@pytest.mark.parametrize(
    "counts",
    [(72, 3600, 22, 4400), (2, 100, 9, 1900), (0, 100, 0, 1900), (30, 1600, 22, 4400)],
)
def test_error_rate_bounds_are_never_narrower_than_brute_force_and_close_to_it(counts):
    lower, upper = (float(b) for b in error_rate_bounds(*counts, tuned_n=TUNED))
    b_lower, b_upper = brute_force_bounds(*counts)
    e_c, n_c, e_p, n_p = counts
    se = math.sqrt(max(e_c, 1) / n_c**2 + max(e_p, 1) / n_p**2)  # Poisson-scale standard error
    assert lower <= b_lower + 1e-12 and upper >= b_upper - 1e-12  # never narrower
    assert b_lower - lower < 0.05 * se and upper - b_upper < 0.05 * se  # and barely wider


def test_error_rate_interval_is_exact_for_zero_and_one_error():
    # no errors at all: the estimate 0 is inside, the upper bound is a few errors' worth
    lower, upper = (float(b) for b in error_rate_bounds(0, 5000, 0, 5000, tuned_n=TUNED))
    assert lower < 0 < upper < 0.005
    # any single error on the candidate cannot exclude a rate near 0
    lower, _ = error_rate_bounds(1, 5000, 0, 5000, tuned_n=TUNED)
    assert float(lower) < 0


# --- false aborts, catches and coverage, by simulation ----------------------------------------


def test_identical_error_rates_rarely_abort_and_the_naive_rule_errs_more():
    # the worst acceptable case: identical arms and a zero margin, 300 canaries x 4 looks
    rng = np.random.default_rng(11)
    e_c, e_p = binomial_canaries(rng, 0.005, 0.005)
    lower, upper = error_rate_bounds(e_c, N_C, e_p, N_P, tuned_n=TUNED)
    sequential = np.mean((lower > 0).any(axis=1))
    naive_lower, naive_upper = wald(e_c, N_C, e_p, N_P)
    naive = np.mean((naive_lower > 0).any(axis=1))
    assert sequential <= ALPHA + 0.01
    assert naive > sequential
    # with rare errors the normal approximation also misplaces the interval: a candidate with
    # no errors yet looks confidently better; at some look most naive intervals exclude 0
    assert ((lower <= 0) & (upper >= 0)).all(axis=1).mean() >= 1 - ALPHA
    assert ((naive_lower <= 0) & (naive_upper >= 0)).all(axis=1).mean() < 0.6


@pytest.mark.parametrize("looks_per_step", [1, 5])
def test_identical_means_rarely_abort_and_the_naive_rule_inflates_with_looks(looks_per_step):
    cand = np.repeat(CAND // looks_per_step, looks_per_step)
    prod = np.repeat(PROD // looks_per_step, looks_per_step)
    rng = np.random.default_rng(12)
    m_c, v_c, m_p, v_p = mean_canaries(rng, normal, cand=cand, prod=prod)
    n_c, n_p = np.cumsum(cand), np.cumsum(prod)
    lower, _ = mean_bounds(n_c, m_c, v_c, n_p, m_p, v_p, tuned_n=TUNED)
    sequential = np.mean((lower > 0).any(axis=1))
    naive = np.mean((m_c - m_p - Z * np.sqrt(v_c / n_c + v_p / n_p) > 0).any(axis=1))
    assert sequential <= ALPHA + 0.01
    assert naive >= ALPHA / 2 + 0.02
    if looks_per_step == 5:  # 20 looks: the naive rule aborts well over alpha
        assert naive >= 2 * ALPHA


def test_a_large_error_regression_fails_quickly():
    rng = np.random.default_rng(13)
    e_c, e_p = binomial_canaries(rng, 0.03, 0.002, canaries=100)
    lower, _ = error_rate_bounds(e_c, N_C, e_p, N_P, tuned_n=TUNED)
    aborted = lower > 0.005
    assert aborted[:, :3].any(axis=1).mean() >= 0.95  # by the 50 % step: 1,600 requests
    assert aborted[:, :2].any(axis=1).mean() >= 0.5  # half of them by the 25 % step
    assert aborted.any(axis=1).all()


def test_a_large_latency_regression_fails_quickly():
    rng = np.random.default_rng(14)
    log_latency = lambda r, size: r.normal(math.log(80), 0.5, size)  # noqa: E731
    m_c, v_c, m_p, v_p = mean_canaries(rng, log_latency, shift=math.log(1.3), canaries=100)
    lower, _ = mean_bounds(N_C, m_c, v_c, N_P, m_p, v_p, tuned_n=TUNED)
    aborted = lower > math.log(1.05)
    assert aborted[:, :2].any(axis=1).mean() >= 0.95
    assert aborted.any(axis=1).all()


@pytest.mark.parametrize("p_c, p_p", [(0.01, 0.005), (0.001, 0.001)])
def test_error_rate_interval_covers_the_truth_at_all_looks_at_once(p_c, p_p):
    # 300 canaries, 2 analysis intervals per step: 8 looks each; rare errors included
    cand, prod = np.repeat(CAND // 2, 2), np.repeat(PROD // 2, 2)
    n_c, n_p = np.cumsum(cand), np.cumsum(prod)
    rng = np.random.default_rng(15)
    e_c, e_p = binomial_canaries(rng, p_c, p_p, cand=cand, prod=prod)
    truth = p_c - p_p
    lower, upper = error_rate_bounds(e_c, n_c, e_p, n_p, tuned_n=TUNED)
    covered = ((lower <= truth) & (truth <= upper)).all(axis=1).mean()
    naive_lower, naive_upper = wald(e_c, n_c, e_p, n_p)
    naive = ((naive_lower <= truth) & (truth <= naive_upper)).all(axis=1).mean()
    assert covered >= 1 - ALPHA
    assert naive < 1 - ALPHA  # a 95 % interval at each look is not 95 % at all looks


@pytest.mark.parametrize("draw", [normal, lognormal])
def test_mean_interval_covers_the_truth_at_all_looks_at_once(draw):
    cand, prod = np.repeat(CAND // 5, 5), np.repeat(PROD // 5, 5)  # 20 looks
    n_c, n_p = np.cumsum(cand), np.cumsum(prod)
    rng = np.random.default_rng(16)
    m_c, v_c, m_p, v_p = mean_canaries(rng, draw, shift=0.1, cand=cand, prod=prod)
    lower, upper = mean_bounds(n_c, m_c, v_c, n_p, m_p, v_p, tuned_n=TUNED)
    covered = ((lower <= 0.1) & (0.1 <= upper)).all(axis=1).mean()
    half = Z * np.sqrt(v_c / n_c + v_p / n_p)
    naive = ((m_c - m_p - half <= 0.1) & (0.1 <= m_c - m_p + half)).all(axis=1).mean()
    assert covered >= 1 - ALPHA
    assert naive < 1 - ALPHA


def test_relative_mean_bounds_are_the_ratios_on_the_ellipse():
    rng = np.random.default_rng(17)
    x_c, x_p = rng.lognormal(0.1, 0.8, 600), rng.lognormal(0.0, 0.8, 2400)
    args = (600, x_c.mean(), x_c.var(ddof=1), 2400, x_p.mean(), x_p.var(ddof=1))
    lo, hi = (float(b) for b in mean_bounds(*args, relative=True, tuned_n=TUNED))
    d_lo, d_hi = (float(b) for b in mean_bounds(*args, tuned_n=TUNED))
    # the same ellipse, parametrized: semi-axes from the difference half-width formula
    rho2 = (2 * math.log(20) + math.log1p(2 * math.log(20))) / TUNED
    spread = [v * (1 + n * rho2) / (n**2 * rho2) for n, v in ((600, args[2]), (2400, args[5]))]
    radius2 = 2 * (math.log(20) + 0.5 * math.log1p(600 * rho2) + 0.5 * math.log1p(2400 * rho2))
    assert (d_hi - d_lo) / 2 == pytest.approx(math.sqrt(radius2 * sum(spread)))
    angle = np.linspace(0, 2 * np.pi, 200001)
    a = args[1] + np.sqrt(radius2 * spread[0]) * np.cos(angle)
    b = args[4] + np.sqrt(radius2 * spread[1]) * np.sin(angle)
    ratio = a / b - 1
    assert lo == pytest.approx(ratio.min(), abs=1e-8) and hi == pytest.approx(ratio.max(), abs=1e-8)
    assert lo < x_c.mean() / x_p.mean() - 1 < hi
    # a production mean that is not confidently positive has no relative interval
    r = mean_sequence(rng.normal(0.05, 1, 100), rng.normal(0.01, 1, 100), 0.1, relative=True)
    assert r.decision == Verdict.INCONCLUSIVE and "not confidently above 0" in r.reason
