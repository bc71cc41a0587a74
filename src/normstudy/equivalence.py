"""Equivalence tests of a comparison: TOST, two one-sided t-tests (Schuirmann 1987,
J. Pharmacokinet. Biopharm. 15:657; Lakens 2017, Soc. Psychol. Personal. Sci. 8:355).

For claims that two levels perform *comparably*: Morwani (2020), §4 (the Lp
normalizations), Santurkar et al. (2018) (noisy Batch Norm trains about as well as Batch
Norm). A non-significant difference is never evidence of equivalence; TOST is: with a
margin m in the metric's units, it rejects "diff <= -m" and "diff >= m" each at alpha,
which is the same as the (1 - 2 alpha) t interval of the difference lying within (-m, m).
Uses the very t machinery of the comparison (paired t on seed-paired differences, Welch
otherwise; :mod:`normstudy.intervals`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

from normstudy.intervals import mean_difference_interval

EQUIVALENCE_ALPHA = 0.05
EQUIVALENT = "equivalent"
DIFFERENT = "different"
DIFFERENT_SIZE_UNCLEAR = "different, within margin not excluded"
NOT_SHOWN = "not shown equivalent"
NO_VERDICT = "no test"
VERDICTS = {
    EQUIVALENT: "TOST rejects both one-sided nulls: the 90% interval lies within ±margin",
    DIFFERENT: "the t-test rejects no difference and the 90% interval lies outside ±margin",
    DIFFERENT_SIZE_UNCLEAR: "the t-test rejects no difference, but the 90% interval reaches "
    "into ±margin: a difference, of a size that may be within the margin",
    NOT_SHOWN: "neither equivalence nor a difference shown (too few seeds or too much noise)",
    NO_VERDICT: "fewer than two seeds on a side or zero variance: no test",
}
"""Values of the ``equivalence`` column of ``comparisons.parquet``."""


def one_sided_p(x, y, shift: float, alternative: str, paired: bool, axis: int = -1):
    """p of the one-sided t-test of mean(x) - mean(y) against ``shift`` along ``axis``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            return sps.ttest_1samp(x - y, shift, alternative=alternative, axis=axis).pvalue
        return sps.ttest_ind(
            x - shift, y, equal_var=False, alternative=alternative, axis=axis
        ).pvalue


def tost_p(candidate, reference, margin: float, *, paired: bool, axis: int = -1):
    """The TOST p-value of candidate - reference within ±``margin``: the larger of the
    one-sided p-values of "diff <= -margin" and "diff >= margin". Works along ``axis``, so
    a simulation gets the very p-values a comparison reports."""
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    lower = one_sided_p(x, y, -margin, "greater", paired, axis)
    upper = one_sided_p(x, y, margin, "less", paired, axis)
    return np.maximum(lower, upper)


def tost(
    candidate, reference, margin: float, *, paired: bool, alpha: float = EQUIVALENCE_ALPHA
) -> dict:
    """TOST of candidate - reference within ±``margin``: ``tost_p`` (:func:`tost_p`) and the
    (1 - 2 alpha) interval ``eq_low``/``eq_high``; NaN when no t-test can be made (fewer
    than two values a side, zero variance)."""
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    none = {"tost_p": math.nan, "eq_low": math.nan, "eq_high": math.nan}
    if x.size < 2 or y.size < 2:
        return none
    if (np.ptp(x - y) == 0) if paired else (np.ptp(x) == 0 and np.ptp(y) == 0):
        return none
    p = float(tost_p(x, y, margin, paired=paired))
    low, high, _ = mean_difference_interval(x, y, paired=paired, confidence=1 - 2 * alpha)
    return {"tost_p": p, "eq_low": float(low), "eq_high": float(high)}


def verdict(
    tost_p: float,
    p_value: float,
    eq_low: float,
    eq_high: float,
    margin: float,
    alpha: float = EQUIVALENCE_ALPHA,
) -> str:
    """One of :data:`VERDICTS`, from the TOST p-value, the ordinary two-sided t-test's
    p-value and the (1 - 2 alpha) interval."""
    if math.isnan(tost_p):
        return NO_VERDICT
    if tost_p < alpha:
        return EQUIVALENT
    if not math.isnan(p_value) and p_value < alpha:
        outside = eq_low > margin or eq_high < -margin
        return DIFFERENT if outside else DIFFERENT_SIZE_UNCLEAR
    return NOT_SHOWN


def equivalence_numbers(
    x: np.ndarray, y: np.ndarray, margin: float | None, *, paired: bool, p_value: float
) -> dict:
    """The equivalence columns of one comparison row (null when no margin is declared)."""
    if margin is None:
        return {
            "equivalence_margin": math.nan,
            "tost_p": math.nan,
            "eq_low": math.nan,
            "eq_high": math.nan,
            "equivalence": None,
        }
    numbers = tost(x, y, margin, paired=paired)
    return {
        "equivalence_margin": float(margin),
        **numbers,
        "equivalence": verdict(
            numbers["tost_p"], p_value, numbers["eq_low"], numbers["eq_high"], margin
        ),
    }
