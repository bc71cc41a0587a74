"""Coverage of the intervals comparisons.parquet reports, measured by simulation.

The evidence for normstudy.intervals' choice of method: many replications of a paired and
an unpaired comparison with n seeds a side, all at once (seeded, vectorised), through the
very function the comparisons call; the share of intervals that hold the true difference
must lie in the stated band. A coverage outside it fails the test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from normstudy.intervals import (
    PAIRED_T,
    WELCH_T,
    hedges_g,
    hedges_g_interval,
    mean_difference_interval,
    noncentrality_interval,
)

SEEDS = (2, 3, 5, 10, 30)
REPLICATIONS = 40_000  # Monte Carlo SE of a 95% coverage: 0.0011


def centred_lognormal(sigma: float):
    return lambda rng, size: rng.lognormal(0.0, sigma, size) - math.exp(sigma**2 / 2)


def normal(sd: float):
    return lambda rng, size: rng.normal(0.0, sd, size)


def centred_exponential(rng, size):
    return rng.exponential(1.0, size) - 1.0


# (candidate's seed distribution, reference's), both with mean 0: the true difference is 0
HOLDING = {
    "normal, equal SD": (normal(1.0), normal(1.0)),
    "normal, SD ratio 2": (normal(2.0), normal(1.0)),
    "lognormal sigma 0.5 (skewness 1.75) vs normal": (centred_lognormal(0.5), normal(0.5)),
    "exponential vs exponential (skewness 2 each)": (centred_exponential, centred_exponential),
}
"""Seed distributions under which the reported interval holds its coverage at every n."""

SHORT = {
    # the mean of n seeds keeps a skewness of 2/sqrt(n) (exponential) or 6.2/sqrt(n)
    # (lognormal): at 3 to 10 seeds the t interval misses more often on the long side
    "exponential vs a nearly constant side": (centred_exponential, normal(0.01), 0.87),
    "lognormal sigma 1 (skewness 6.2) vs normal": (centred_lognormal(1.0), normal(0.5), 0.83),
}
"""Strongly skewed seeds, where no interval method tried holds 95% at few seeds (the t
interval falls to the stated floor; BCa falls further, see the BCa test below). Accuracy
over seeds is rarely this skewed; a diverged seed counted at chance is the exception."""


def coverage(candidate, reference, n: int, *, paired: bool, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = candidate(rng, (REPLICATIONS, n))
    y = reference(rng, (REPLICATIONS, n))
    low, high, method = mean_difference_interval(x, y, paired=paired, axis=1)
    assert method == (PAIRED_T if paired else WELCH_T)
    return float(np.mean((low <= 0) & (0 <= high)))


def upper_bound(n: int, paired: bool) -> float:
    """0.97, but 0.98 for Welch at up to 5 seeds a side: its Satterthwaite degrees of
    freedom err low there (measured 96-97.7%), so the interval errs wide, never narrow."""
    return 0.98 if not paired and n <= 5 else 0.97


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
@pytest.mark.parametrize("shape", list(HOLDING))
def test_t_interval_holds_its_coverage_at_every_number_of_seeds(shape, paired):
    candidate, reference = HOLDING[shape]
    measured = {n: coverage(candidate, reference, n, paired=paired, seed=n) for n in SEEDS}
    for n, value in measured.items():
        assert 0.93 <= value <= upper_bound(n, paired), (shape, n, measured)


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
@pytest.mark.parametrize("shape", list(SHORT))
def test_t_interval_falls_short_for_strongly_skewed_seeds_as_documented(shape, paired):
    candidate, reference, floor = SHORT[shape]
    measured = {n: coverage(candidate, reference, n, paired=paired, seed=n) for n in SEEDS}
    assert all(floor <= value <= 0.97 for value in measured.values()), (shape, measured)
    # the shortfall is real (not an artefact of the band): some n misses 93%
    assert min(measured.values()) < 0.93, (shape, measured)


def test_bca_bootstrap_undercovers_at_few_seeds():
    """Why the project left BCa: at 3 normal seeds its nominal 95% interval of the mean
    paired difference held the truth about 3 times in 4 (the t interval: 95%)."""
    rng = np.random.default_rng(0)
    hits = 0
    replications = 300
    for _ in range(replications):
        differences = rng.normal(0.0, 1.0, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interval = sps.bootstrap(
                (differences,), np.mean, n_resamples=999, method="BCa", rng=rng
            ).confidence_interval
        hits += bool(interval.low <= 0 <= interval.high)
    assert hits / replications < 0.85


def test_intervals_match_their_textbook_formulas():
    x, y = np.array([3.0, 4.5, 5.0, 7.0]), np.array([1.0, 2.5, 2.0, 4.0])
    d = x - y
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    low, high, _ = mean_difference_interval(x, y, paired=True)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))
    a, b = x.var(ddof=1) / 4, y.var(ddof=1) / 4
    nu = (a + b) ** 2 / (a**2 / 3 + b**2 / 3)
    half = sps.t.ppf(0.975, nu) * math.sqrt(a + b)
    low, high, _ = mean_difference_interval(x, y, paired=False)
    assert (low, high) == pytest.approx((x.mean() - y.mean() - half, x.mean() - y.mean() + half))


def test_noncentral_t_interval_ends_put_t_at_the_tails():
    for t, df in ((1.58, 38), (6.0, 2), (-4.0, 3), (40.0, 2)):
        low, high = noncentrality_interval(t, df, 0.95)
        assert sps.nct.cdf(t, df, low) == pytest.approx(0.975, abs=1e-6)
        assert sps.nct.cdf(t, df, high) == pytest.approx(0.025, abs=1e-6)
    # d = 0.5 with 20 a side: [-0.13, 1.13] (Cumming & Finch 2001, Educ. Psychol. Meas.
    # 61:532, the noncentral t interval of their worked example)
    low, high = noncentrality_interval(0.5 * math.sqrt(10), 38, 0.95)
    assert (low / math.sqrt(10), high / math.sqrt(10)) == pytest.approx((-0.13, 1.13), abs=0.01)


def test_hedges_g_interval_holds_its_coverage_and_is_wide_at_two_seeds():
    rng = np.random.default_rng(1)
    for n in (2, 5):
        hits = 0
        for _ in range(400):
            x, y = rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)
            low, high = hedges_g_interval(x, y)
            hits += bool(low <= 1.0 <= high)
        assert 0.92 <= hits / 400 <= 0.98, (n, hits / 400)
    # the audit's case: g = 6.06 from two seeds a side (d = 0.75 / 0.0707, J = 4/7) is
    # anything from 1.4 to 20.5
    x, y = np.array([1.0, 1.1]), np.array([0.25, 0.35])
    assert hedges_g(x, y) == pytest.approx(0.75 / math.sqrt(0.005) * 4 / 7)
    assert hedges_g_interval(x, y) == pytest.approx((1.386, 20.53), abs=0.01)
    assert all(math.isnan(v) for v in hedges_g_interval([1.0], [0.0, 1.0]))
