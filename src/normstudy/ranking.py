"""Rankings of many levels over many conditions: the Friedman test, average ranks, the
Iman-Davenport F and the Nemenyi critical difference of Demšar (2006), "Statistical
Comparisons of Classifiers over Multiple Data Sets", JMLR 7, §3.2.2. Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from normstudy.comparison_specs import (
    DIVERGED_POLICIES,
    metric_direction,
    python_value,
    validate_diverged_policy,
    validate_factor,
)
from normstudy.stats_common import (
    checked_cells,
    condition_json,
    failed_cells,
    grouped_by,
    metric_values,
    sorted_levels,
    statistic_and_p,
)

MIN_BLOCKS = 2
FEWER_THAN_TWO_BLOCKS = (
    "fewer than two blocks: the Friedman and Iman-Davenport tests, the Nemenyi critical "
    "difference and its groups are undefined (average ranks are of one block, descriptive)"
)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k levels: the studentized range
    quantile at 1 - alpha with infinite degrees of freedom over sqrt(2) (Demšar 2006,
    §3.2.2 and Table 5a: 2.343 for k = 3, 2.569 for k = 4 at alpha = 0.05)."""
    return float(sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """CD = q_alpha sqrt(k (k + 1) / (6 N)) (Demšar 2006, §3.2.2): two levels whose
    average ranks over N blocks differ by at least CD differ significantly.

    NaN below two blocks: the Nemenyi test compares average ranks over several data sets
    (blocks); with one block the ranks are one observation and no test exists, though
    the formula would still give a number."""
    if k < 2 or n_blocks < MIN_BLOCKS:
        return math.nan
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n_blocks))


def iman_davenport(chi2: float, k: int, n_blocks: int) -> tuple[float, float]:
    """Iman & Davenport's F_F = (N - 1) chi2 / (N (k - 1) - chi2), F-distributed with
    (k - 1, (k - 1)(N - 1)) degrees of freedom; Demšar (2006, §3.2.2) prefers it to the
    Friedman chi2, which is undesirably conservative.

    chi2 is at most N (k - 1), reached when every block ranks the levels the same; F_F
    is then +inf with p = 0 (the strongest possible agreement, not a missing number).
    NaN below two blocks or two levels, where no test exists."""
    if not np.isfinite(chi2) or k < 2 or n_blocks < MIN_BLOCKS:
        return math.nan, math.nan
    most = n_blocks * (k - 1)
    # friedmanchisquare's tie correction can land a hair above or below the maximum
    if chi2 >= most * (1 - 1e-12):
        return math.inf, 0.0
    f = (n_blocks - 1) * chi2 / (most - chi2)
    return float(f), float(sps.f.sf(f, k - 1, (k - 1) * (n_blocks - 1)))


def critical_difference_groups(
    average_ranks: Mapping[object, float], critical_difference: float
) -> tuple[tuple, ...]:
    """Maximal runs of levels, in order of average rank, whose ranks all differ by less
    than the critical difference: the bars of a CD diagram (Demšar 2006, Fig. 1-2).
    Only groups of two or more levels are returned."""
    if not np.isfinite(critical_difference):
        return ()
    ordered = sorted(average_ranks.items(), key=lambda item: item[1])
    groups, reach = [], -1
    for start, (_, rank) in enumerate(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1][1] - rank < critical_difference:
            end += 1
        if end > start and end > reach:
            groups.append(tuple(level for level, _ in ordered[start : end + 1]))
            reach = end
    return tuple(groups)


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test and average ranks of the levels of one factor over blocks.

    ``average_ranks`` maps level -> average rank, best (rank 1) first; ``ranks`` holds
    the rank of every level in every block used (rows: block JSON, columns: levels).
    """

    factor: str
    metric: str
    diverged: str
    average_ranks: dict
    n_blocks: int
    n_blocks_dropped: int
    dropped_blocks: tuple[str, ...]
    n_diverged: dict
    statistic: float
    p_value: float
    iman_davenport_f: float
    iman_davenport_p: float
    alpha: float
    q_alpha: float
    critical_difference: float
    groups: tuple[tuple, ...]
    note: str
    ranks: pd.DataFrame = field(repr=False, compare=False)

    @property
    def levels(self) -> tuple:
        return tuple(self.average_ranks)


def block_means(
    frame: pd.DataFrame,
    values: pd.Series,
    factor: str,
    block_axes: Sequence[str],
    levels: Sequence[object],
) -> pd.DataFrame:
    """Mean over seeds of every (block, level): rows are blocks (condition JSON), columns
    levels; NaN where a level has no value in the numbers of a block."""
    table = {}
    for key, group in grouped_by(frame, block_axes):
        table[condition_json(block_axes, key)] = {
            level: values[group.index[group[factor] == level]].mean() for level in levels
        }
    return pd.DataFrame.from_dict(table, orient="index", columns=list(levels), dtype=float)


def block_ranks(means: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Rank of each level within each block, 1 = best, ties averaged (Demšar 2006, §3.2.2)."""
    signed = -means if direction == "higher" else means
    return signed.rank(axis=1, method="average")


def ranked_levels(
    frame: pd.DataFrame, factor: str, levels: Sequence[object] | None
) -> tuple[pd.DataFrame, list]:
    """The cells of the ``levels`` to rank (default: every level of ``factor``) and
    those levels; unknown levels, or fewer than two, fail naming the levels there are."""
    all_levels = sorted_levels(frame[factor])
    if levels is None:
        levels = all_levels
    else:
        unknown = [level for level in levels if level not in all_levels]
        if unknown:
            raise ValueError(
                f"level(s) {unknown} of {factor!r} are not in the cells; levels: {all_levels}"
            )
        levels = list(levels)
        frame = frame[frame[factor].isin(levels)]
    if len(levels) < 2:
        raise ValueError(f"ranking {factor!r} needs at least two levels, got {levels}")
    return frame, list(levels)


def friedman_test(means: pd.DataFrame, k: int, n: int) -> tuple[float, float, list[str]]:
    """(statistic, p-value, notes) of the Friedman test on the complete blocks' means
    (scipy.stats.friedmanchisquare, with its tie correction); NaN with a note when it
    is undefined (fewer than two blocks or three levels)."""
    if n < MIN_BLOCKS:
        return math.nan, math.nan, [FEWER_THAN_TWO_BLOCKS]
    if k < 3:
        return math.nan, math.nan, ["Friedman test needs at least three levels"]
    statistic, p_value = statistic_and_p(sps.friedmanchisquare, *means.to_numpy().T)
    return statistic, p_value, []


def friedman_ranks(
    cells: pd.DataFrame,
    factor: str,
    axes: Sequence[str],
    *,
    metric: str = "final_test_acc",
    seed_axis: str = "seed",
    diverged: str = "chance",
    alpha: float = 0.05,
    levels: Sequence[object] | None = None,
    study: str | None = None,
) -> FriedmanResult:
    """Friedman test and Nemenyi critical difference for the levels of ``factor``
    (Demšar 2006, §3.2.2).

    A block is one combination of the axes other than ``factor`` and ``seed_axis``;
    within a block each level's value is the mean over its seeds (after the ``diverged``
    policy), so seeds are replicates, not blocks. A block where a level has no value is
    dropped and counted. Levels are ranked within each block, 1 = best (higher is better
    for accuracies, lower for losses and the generalization gap); the statistic and
    p-value are scipy.stats.friedmanchisquare's (with its tie correction).
    """
    axes = list(axes)
    validate_factor(factor, axes, seed_axis)
    direction = metric_direction(metric)
    validate_diverged_policy(diverged, metric)
    frame = checked_cells(cells, study, axes, [metric])
    values = metric_values(frame, metric, diverged)
    frame, levels = ranked_levels(frame, factor, levels)
    block_axes = [axis for axis in axes if axis not in (factor, seed_axis)]
    failed = failed_cells(frame, metric)
    means = block_means(frame, values, factor, block_axes, levels)
    return ranked_blocks(
        frame,
        means,
        failed,
        levels,
        factor=factor,
        metric=metric,
        direction=direction,
        diverged=diverged,
        alpha=alpha,
    )


def ranked_blocks(
    frame: pd.DataFrame,
    means: pd.DataFrame,
    failed: pd.Series,
    levels: Sequence[object],
    *,
    factor: str,
    metric: str,
    direction: str,
    diverged: str,
    alpha: float,
) -> FriedmanResult:
    """The :class:`FriedmanResult` of the block means (one column per level of ``levels``),
    ranked over the blocks where every level has a value."""
    complete = means.notna().all(axis=1)
    ranks = block_ranks(means[complete], direction)
    k, n = len(levels), int(complete.sum())
    statistic, p_value, notes = friedman_test(means[complete], k, n)
    if not complete.all():
        notes.append(f"{int((~complete).sum())} block(s) dropped: a level has no value")
    n_failed = int(failed.sum())
    if n_failed:
        notes.append(f"{n_failed} diverged cell(s) {DIVERGED_POLICIES[diverged]}")
    average = ranks.mean(axis=0).sort_values(kind="stable") if n else pd.Series(dtype=float)
    average_ranks = {python_value(level): float(rank) for level, rank in average.items()}
    cd = nemenyi_critical_difference(k, n, alpha)
    f, f_p = iman_davenport(statistic, k, n)
    return FriedmanResult(
        factor=factor,
        metric=metric,
        diverged=diverged,
        average_ranks=average_ranks,
        n_blocks=n,
        n_blocks_dropped=int((~complete).sum()),
        dropped_blocks=tuple(means.index[~complete]),
        n_diverged={
            level: int(failed[frame.index[frame[factor] == level]].sum()) for level in levels
        },
        statistic=statistic,
        p_value=p_value,
        iman_davenport_f=f,
        iman_davenport_p=f_p,
        alpha=alpha,
        q_alpha=nemenyi_q(k, alpha),
        critical_difference=cd,
        groups=critical_difference_groups(average_ranks, cd),
        note="; ".join(notes),
        ranks=ranks,
    )
