"""Accuracy against learning rate by normalizer, divergence marked: the largest stable
learning rate (Morwani 2020, §3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from normstudy import stats_common
from normstudy.figures.drawing import finish
from normstudy.figures.metric_axis import metric_figure
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Line, studies_with
from normstudy.figures.style import number_text
from normstudy.figures.tables import Tables

NAME = "lr_stability"
METRICS = ["final_train_acc", "final_test_acc"]


def max_stable_lr(rows: pd.DataFrame) -> float | None:
    """The largest learning rate at which no cell (seed) diverged, below the smallest one
    at which any did (None if every learning rate diverged)."""
    failed = stats_common.failed_cells(rows, "final_train_acc")
    diverging = rows.loc[failed, "lr"].astype(float)
    stable = rows.loc[~failed, "lr"].astype(float)
    if not diverging.empty:
        stable = stable[stable < diverging.min()]
    return float(stable.max()) if not stable.empty else None


def with_max_stable_lr(line: Line, metric: str) -> str:
    largest = max_stable_lr(line.rows)
    failed = int(stats_common.failed_cells(line.rows, metric).sum())
    stable = "none stable" if largest is None else f"max stable lr {number_text(largest)}"
    return f"{line.label} ({stable}; {failed} diverged)"


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """Training and test accuracy against lr, one row per study with lr and norm axes."""
    studies = studies_with(tables, ["lr", "norm"], min_levels=2)
    if not studies:
        return skip(
            NAME,
            "no study has both an 'lr' and a 'norm' grid axis with at least two values "
            f"each; studies and axes: {tables.study_axes()}",
        )
    fig = metric_figure(tables, studies, "lr", ["norm"], METRICS, relabel=with_max_stable_lr)
    result = FigureResult(NAME)
    finish(result, fig, out_dir, NAME)
    return result
