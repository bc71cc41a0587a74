"""One level against a reference over seeds: the numbers of one pairwise comparison.

n, mean and SD of both sides, the difference with a t interval
(:mod:`normstudy.intervals`: paired t or Welch, chosen by measured coverage), a t-test and
a rank test (paired when the seeds pair up), Hedges' g with its interval, power and seeds
needed (:mod:`normstudy.power`), equivalence (:mod:`normstudy.equivalence`). Diverged
cells enter by the comparison's ``diverged`` policy and are always counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from normstudy.comparison_specs import (
    DIVERGED_POLICIES,
    FEWER_THAN_TWO,
)
from normstudy.equivalence import equivalence_numbers
from normstudy.intervals import (
    NO_INTERVAL,
    hedges_g,
    hedges_g_interval,
    mean_difference_interval,
)
from normstudy.power import power_numbers
from normstudy.stats_common import (
    statistic_and_p,
)


@dataclass(frozen=True)
class Side:
    """The cells of one level within one condition."""

    seeds: np.ndarray
    values: np.ndarray
    n_cells: int
    n_diverged: int


def side_of(rows: pd.DataFrame, values: pd.Series, failed: pd.Series, seed_axis: str | None):
    used = values[rows.index].notna().to_numpy()
    seeds = rows[seed_axis].to_numpy() if seed_axis else np.arange(len(rows))
    return Side(
        seeds=seeds[used],
        values=values[rows.index].to_numpy(dtype=float)[used],
        n_cells=len(rows),
        n_diverged=int(failed[rows.index].sum()),
    )


def pairs_up(reference: Side, candidate: Side, seed_axis: str | None) -> bool:
    """Seeds pair up: the same set of (at least two) seeds in the numbers of both sides."""
    return (
        seed_axis is not None
        and len(reference.seeds) >= 2
        and set(reference.seeds.tolist()) == set(candidate.seeds.tolist())
    )


def aligned(side: Side) -> np.ndarray:
    return side.values[np.argsort(side.seeds, kind="stable")]


def sd(values: np.ndarray) -> float:
    if values.size < 2:
        return math.nan
    return 0.0 if np.ptp(values) == 0 else float(values.std(ddof=1))


def mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def diverged_note(reference: Side, candidate: Side, policy: str, worst: float) -> str | None:
    if reference.n_diverged + candidate.n_diverged == 0:
        return None
    how = DIVERGED_POLICIES[policy]
    if policy == "worst":
        how = f"counted as the study's worst value ({worst:.6g})"
    return f"diverged cells (ref {reference.n_diverged}, cand {candidate.n_diverged}) {how}"


def paired_tests(x: np.ndarray, y: np.ndarray) -> tuple[dict, list[str]]:
    """ttest_rel and Wilcoxon signed-rank of candidate ``x`` against reference ``y``."""
    differences = x - y
    notes = []
    row = {"test": "ttest_rel", "test_rank": "wilcoxon"}
    if np.ptp(differences) == 0:
        row["statistic"], row["p_value"] = math.nan, math.nan
        notes.append("zero variance of the paired differences: no t-test, no CI")
    else:
        row["statistic"], row["p_value"] = statistic_and_p(sps.ttest_rel, x, y)
    if np.all(differences == 0):
        row["statistic_rank"], row["p_value_rank"] = math.nan, math.nan
        notes.append("identical values on both sides: no rank test")
    else:
        row["statistic_rank"], row["p_value_rank"] = statistic_and_p(sps.wilcoxon, x, y)
    return row, notes


def unpaired_tests(x: np.ndarray, y: np.ndarray) -> tuple[dict, list[str]]:
    """Welch's t-test and Mann-Whitney U of candidate ``x`` against reference ``y``."""
    notes = []
    row = {"test": "welch", "test_rank": "mannwhitneyu"}
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        row["statistic"], row["p_value"] = math.nan, math.nan
        notes.append("zero variance on both sides: no t-test, no CI")
    else:
        row["statistic"], row["p_value"] = statistic_and_p(sps.ttest_ind, x, y, equal_var=False)
    if np.ptp(np.concatenate([x, y])) == 0:
        row["statistic_rank"], row["p_value_rank"] = math.nan, math.nan
        notes.append("identical values on both sides: no rank test")
    else:
        row["statistic_rank"], row["p_value_rank"] = statistic_and_p(
            sps.mannwhitneyu, x, y, alternative="two-sided"
        )
    return row, notes


def comparison_numbers(
    reference: Side,
    candidate: Side,
    *,
    paired: bool,
    confidence: float,
    smallest_effect: float | None = None,
    equivalence_margin: float | None = None,
) -> tuple[dict, list[str]]:
    """Tests, intervals, effect size and power of one comparison, and notes on what is
    missing."""
    x = aligned(candidate) if paired else candidate.values
    y = aligned(reference) if paired else reference.values
    row = {
        "test": "ttest_rel" if paired else "welch",
        "test_rank": "wilcoxon" if paired else "mannwhitneyu",
        "statistic": math.nan,
        "p_value": math.nan,
        "statistic_rank": math.nan,
        "p_value_rank": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "ci_method": NO_INTERVAL,
        "hedges_g": math.nan,
        "g_low": math.nan,
        "g_high": math.nan,
    }
    power, power_notes = power_numbers(x, y, paired=paired, smallest_effect=smallest_effect)
    row.update(power)
    if x.size < 2 or y.size < 2:
        # No test runs: the row must not name one (as ci_method says no interval).
        row["test"] = row["test_rank"] = NO_INTERVAL
        row.update(equivalence_numbers(x, y, equivalence_margin, paired=paired, p_value=math.nan))
        return row, [FEWER_THAN_TWO]
    tests, notes = paired_tests(x, y) if paired else unpaired_tests(x, y)
    row.update(tests)
    row.update(equivalence_numbers(x, y, equivalence_margin, paired=paired, p_value=row["p_value"]))
    degenerate = np.ptp(x - y) == 0 if paired else (np.ptp(x) == 0 and np.ptp(y) == 0)
    if not degenerate:
        low, high, method = mean_difference_interval(x, y, paired=paired, confidence=confidence)
        row["ci_low"], row["ci_high"], row["ci_method"] = float(low), float(high), method
    row["hedges_g"] = hedges_g(x, y)
    if math.isnan(row["hedges_g"]):
        notes.append("zero pooled SD: no effect size")
    else:
        row["g_low"], row["g_high"] = hedges_g_interval(x, y, confidence=confidence)
    return row, notes + power_notes
