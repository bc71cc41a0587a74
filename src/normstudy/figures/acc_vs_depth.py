"""Test accuracy against depth per freeze policy (Frankle, Schwab & Morcos 2020, §4 and
figure 2: BN-only accuracy grows with depth)."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.drawing import finish
from normstudy.figures.metric_axis import metric_figure
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import studies_with
from normstudy.figures.tables import Tables

NAME = "acc_vs_depth"


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One panel per study with depth and freeze axes (and per value of its other axes)."""
    studies = studies_with(tables, ["depth", "freeze"], min_levels=2)
    if not studies:
        return skip(
            NAME,
            "no study has both a 'depth' and a 'freeze' grid axis with at least two values "
            f"each; studies and axes: {tables.study_axes()}",
        )
    fig = metric_figure(tables, studies, "depth", ["freeze"], ["final_test_acc"])
    result = FigureResult(NAME)
    finish(result, fig, out_dir, NAME)
    return result
