"""Confidence intervals of a comparison: the mean difference and Hedges' g.

The mean difference gets a Student t interval: on the paired differences when the seeds
pair up (``scipy.stats.ttest_rel``), Welch's otherwise (``scipy.stats.ttest_ind`` with
``equal_var=False``; Welch 1947, Biometrika 34:28). The choice is by measured coverage
(``tests/test_intervals.py`` simulates it; README "Statistics" has the table): the
nominal 95% paired t interval covers 94.6-95.3% for normal and moderately skewed seeds
at every n from 2 to 30 (95-96.6% for skewed seeds on both sides), Welch's 97-97.7% at 2
seeds a side (its Satterthwaite degrees of freedom err low, so it errs wide) and 95-97%
above, while the BCa bootstrap the project used before covered 53-78% for normal seeds at
2-3 seeds and 85-92% at 5-10: a bootstrap resamples the few values there are and cannot know the
spread it has not seen (Efron & Tibshirani 1993, "An Introduction to the Bootstrap",
§14.3 and §22). No method tried holds 95% for strongly skewed seeds at 3-10 seeds (t:
85-90%); that shortfall is measured and documented, not hidden.

Hedges' g gets the interval of the population standardized difference δ obtained by
inverting the noncentral t distribution (Hedges & Olkin 1985, "Statistical Methods for
Meta-Analysis", §5.B; Steiger & Fouladi 1997, in "What if there were no significance
tests?", ch. 9): exact for normal seeds with equal variances on independent sides. With
2 seeds it is very wide, which is the point: g is not precise there.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import optimize
from scipy import stats as sps

PAIRED_T = "paired_t"
WELCH_T = "welch_t"
NO_INTERVAL = "none"
INTERVAL_METHODS = {
    PAIRED_T: "Student t interval of the mean of the paired differences (scipy ttest_rel)",
    WELCH_T: "Welch t interval of the difference of means (scipy ttest_ind, equal_var=False)",
    NO_INTERVAL: "no interval (fewer than two seeds on a side, or zero variance)",
}
"""Values of the ``ci_method`` column of ``comparisons.parquet``."""


def mean_difference_interval(
    candidate: np.ndarray,
    reference: np.ndarray,
    *,
    paired: bool,
    confidence: float = 0.95,
    axis: int = -1,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(low, high, method) of the t interval of mean(candidate) - mean(reference).

    Works along ``axis``, so a simulation can pass many replications at once and get
    the very intervals a comparison reports. NaN bounds where scipy cannot form one
    (fewer than two values on a side, zero variance).
    """
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            result = sps.ttest_rel(x, y, axis=axis)
        else:
            result = sps.ttest_ind(x, y, axis=axis, equal_var=False)
        interval = result.confidence_interval(confidence_level=confidence)
    return interval.low, interval.high, PAIRED_T if paired else WELCH_T


def hedges_correction(n1: int, n2: int) -> float:
    """Hedges' J = 1 - 3 / (4 (n1 + n2) - 9) (Hedges 1981, J. Educ. Stat. 6:107, with
    m = n1 + n2 - 2 in his J(m) = 1 - 3 / (4m - 1))."""
    return 1 - 3 / (4 * (n1 + n2) - 9)


def pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    """sqrt(((n1 - 1) s1² + (n2 - 1) s2²) / (n1 + n2 - 2)); NaN below two values a side."""
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return math.nan
    return math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))


def hedges_g(candidate, reference) -> float:
    """Hedges' g of candidate minus reference: the pooled-SD standardized mean difference
    times :func:`hedges_correction`.

    Used for paired seeds too: with equal n the pooled SD is sqrt((s1² + s2²) / 2), the
    d_av of Lakens (2013, Front. Psychol. 4:863), so g does not grow with the correlation
    between the paired runs as d_z would, and reads the same for paired and unpaired rows.
    NaN when a side has fewer than two values or the pooled SD is zero.
    """
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    if x.size < 2 or y.size < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return math.nan
    pooled = pooled_sd(x, y)
    if pooled == 0:
        return math.nan
    return hedges_correction(x.size, y.size) * (x.mean() - y.mean()) / pooled


def noncentral_t_cdf(x: float, df: float, ncp: float) -> float:
    """scipy.stats.nct.cdf, with its NaN far in the tails replaced by the limit there: 0
    when the noncentrality lies far above ``x``, 1 when far below."""
    value = float(sps.nct.cdf(x, df, ncp))
    if math.isnan(value):
        return 0.0 if ncp > x else 1.0
    return value


def noncentrality_interval(t: float, df: float, confidence: float) -> tuple[float, float]:
    """The noncentrality parameters λ whose noncentral t puts ``t`` at its upper and lower
    (1 - confidence)/2 tails: the confidence interval of λ (Steiger & Fouladi 1997).

    nct.cdf(t, df, λ) falls as λ grows, so each end is the root of a monotone function;
    the bracket widens until it holds the root.
    """
    if t < 0:
        low, high = noncentrality_interval(-t, df, confidence)
        return -high, -low
    alpha = 1 - confidence

    def root(target: float) -> float:
        def gap(ncp: float) -> float:
            return noncentral_t_cdf(t, df, ncp) - target

        low, high = t - 10.0, t + 10.0
        while gap(low) < 0:
            low -= 2 * (high - low)
        while gap(high) > 0:
            high += 2 * (high - low)
        return float(optimize.brentq(gap, low, high, xtol=1e-10))

    return root(1 - alpha / 2), root(alpha / 2)


def hedges_g_interval(candidate, reference, *, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the standardized mean difference δ for :func:`hedges_g`: the noncentral
    t interval of λ = δ sqrt(n1 n2 / (n1 + n2)) with n1 + n2 - 2 degrees of freedom
    (Hedges & Olkin 1985, §5.B), divided by that scale.

    Also for paired rows, whose g is d_av (pooled SD): the interval then treats the two
    sides as independent, which is exact for uncorrelated seeds and wider than needed when
    the same seed correlates the two sides positively (Algina & Keselman 2003, Educ.
    Psychol. Meas. 63:537, on intervals of d_av in paired designs). NaN where g is NaN.
    """
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    g = hedges_g(x, y)
    if math.isnan(g):
        return math.nan, math.nan
    n1, n2 = x.size, y.size
    scale = math.sqrt(n1 * n2 / (n1 + n2))
    d = (x.mean() - y.mean()) / pooled_sd(x, y)
    low, high = noncentrality_interval(d * scale, n1 + n2 - 2, confidence)
    return low / scale, high / scale
