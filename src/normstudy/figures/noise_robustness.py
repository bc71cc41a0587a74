"""Best validation accuracy against training examples per class on the noise-feature
task: Batch Norm with and without shuffling, and no normalization (Morwani 2020, §5)."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.drawing import finish
from normstudy.figures.metric_axis import metric_figure
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Line, studies_with
from normstudy.figures.tables import Tables

NAME = "noise_robustness"
AXIS = "dataset_options.n_per_class"
PAPER_NAMES = {"BatchNorm, shuffled": "BN_reg", "BatchNorm, not shuffled": "BN_without_reg"}


def with_paper_name(line: Line, metric: str) -> str:
    """``BatchNorm, shuffled (BN_reg)``: the line's label with Morwani's name for it."""
    name = PAPER_NAMES.get(line.label)
    return f"{line.label} ({name})" if name else line.label


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One panel per study with a samples-per-class axis (and per value of its other axes);
    one line per normalizer and shuffling."""
    studies = studies_with(tables, [AXIS], min_levels=2)
    if not studies:
        return skip(
            NAME,
            f"no study has a '{AXIS}' grid axis with at least two values; studies and axes: "
            f"{tables.study_axes()}",
        )
    fig = metric_figure(
        tables, studies, AXIS, ["norm", "shuffle"], ["best_val_acc"], relabel=with_paper_name
    )
    result = FigureResult(NAME)
    finish(result, fig, out_dir, NAME)
    return result
