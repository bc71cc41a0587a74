"""Power of a comparison's t-test, and the seeds it would need.

The power of a two-sided t-test at level α is
P(|T| > t_{1-α/2, df}) with T noncentral t (Cohen 1988, "Statistical Power Analysis for
the Behavioral Sciences", ch. 2; computed with scipy.stats.nct rather than his tables):

- paired (the test on the n paired differences): df = n - 1, λ = d_z sqrt(n), with
  d_z = mean / SD of the differences;
- unpaired (n seeds on each side): df = 2n - 2, λ = d sqrt(n / 2), with d = difference
  of means / pooled SD; Welch's test, which the comparisons run, has nearly this power
  with equal n.

The seeds needed for the *observed* effect are a rough guide only: an effect observed on
a few seeds is noisy, and power computed from it restates the p-value (Hoenig & Heisey
2001, Am. Stat. 55:19). A smallest effect of interest declared in advance (config.yaml,
``smallest_effect:`` of a comparison, in the metric's units) is the sound basis (Lakens
2022, Collabra Psychology 8:33267); it is standardized by the observed SD, which is
itself uncertain with few seeds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from normstudy.intervals import noncentral_t_cdf, pooled_sd

TARGET_POWER = 0.8
ALPHA = 0.05
MAX_SEEDS = 1000
"""Searches stop here: an effect that needs more seeds is out of reach of seeds."""


def t_power(n: int, effect: float, *, paired: bool, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test with ``n`` seeds (a side) at standardized ``effect``."""
    if n < 2 or not math.isfinite(effect):
        return math.nan
    df, ncp = (n - 1, effect * math.sqrt(n)) if paired else (2 * n - 2, effect * math.sqrt(n / 2))
    critical = sps.t.ppf(1 - alpha / 2, df)
    return 1.0 - noncentral_t_cdf(critical, df, ncp) + noncentral_t_cdf(-critical, df, ncp)


def seeds_needed(
    effect: float,
    *,
    paired: bool,
    power: float = TARGET_POWER,
    alpha: float = ALPHA,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """The fewest seeds (a side, at least 2) whose t-test reaches ``power`` at ``effect``;
    None for a zero or undefined effect, or one that needs more than ``max_seeds``.

    Power grows with n at a fixed effect, so a doubling search and a bisection find it.
    """
    if not math.isfinite(effect) or effect == 0:
        return None
    effect = abs(effect)

    def enough(n: int) -> bool:
        return t_power(n, effect, paired=paired, alpha=alpha) >= power

    if enough(2):
        return 2
    low, high = 2, 4
    while not enough(high):
        if high >= max_seeds:
            return None
        low, high = high, min(2 * high, max_seeds)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def effect_scale(candidate: np.ndarray, reference: np.ndarray, *, paired: bool) -> float:
    """The SD that standardizes a difference for the test the comparison runs: of the
    paired differences, or pooled over the two sides; NaN below two values a side."""
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    if x.size < 2 or y.size < 2:
        return math.nan
    if paired:
        return float((x - y).std(ddof=1))
    return pooled_sd(x, y)


def power_numbers(
    candidate: np.ndarray,
    reference: np.ndarray,
    *,
    paired: bool,
    smallest_effect: float | None,
) -> tuple[dict, list[str]]:
    """The power columns of one comparison row and notes on what is missing."""
    x, y = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    row = {
        "effect_power": math.nan,
        "power_now": math.nan,
        "n_needed": None,
        "smallest_effect": math.nan if smallest_effect is None else float(smallest_effect),
        "n_needed_smallest": None,
    }
    scale = effect_scale(x, y, paired=paired)
    if not math.isfinite(scale) or scale == 0:
        return row, []
    n_now = min(x.size, y.size)
    effect = (x.mean() - y.mean()) / scale
    row["effect_power"] = float(effect)
    row["power_now"] = t_power(n_now, effect, paired=paired)
    notes = []
    row["n_needed"] = seeds_needed(effect, paired=paired)
    if row["n_needed"] is None:
        notes.append(f"observed effect needs more than {MAX_SEEDS} seeds for 80% power")
    if smallest_effect is not None:
        row["n_needed_smallest"] = seeds_needed(smallest_effect / scale, paired=paired)
        if row["n_needed_smallest"] is None:
            notes.append(f"smallest effect needs more than {MAX_SEEDS} seeds for 80% power")
    return row, notes
