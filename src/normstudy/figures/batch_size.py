"""Test accuracy against batch size, Batch Norm with and without aggregated statistics at
test time ("Is Batch Norm unique?" 2020, §7 and figure 5)."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.drawing import finish
from normstudy.figures.metric_axis import metric_figure
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import studies_with
from normstudy.figures.tables import Tables

NAME = "batch_size"


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One panel per study with batch_size and norm axes (and per value of its other
    axes, e.g. the test batch size); Batch-Train dashed beside Batch Norm."""
    studies = studies_with(tables, ["batch_size", "norm"], min_levels=2)
    if not studies:
        return skip(
            NAME,
            "no study has both a 'batch_size' and a 'norm' grid axis with at least two "
            f"values each; studies and axes: {tables.study_axes()}",
        )
    fig = metric_figure(tables, studies, "batch_size", ["norm"], ["final_test_acc"])
    result = FigureResult(NAME)
    finish(result, fig, out_dir, NAME)
    return result
