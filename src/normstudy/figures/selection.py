"""Which cells a figure draws and how: studies with the axes it needs, one panel per
combination of the other axes, one line per level, in the study's order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from normstudy import comparison_specs, stats_common
from normstudy.figures.intervals import (
    MAX_BANDS,
)
from normstudy.figures.style import (
    condition_label,
    level_label,
    line_styles,
    ordered_levels,
)
from normstudy.figures.tables import Tables

SEED_AXIS = "seed"


def studies_with(tables: Tables, required: Sequence[str], min_levels: int = 1) -> list[str]:
    """Studies whose grid axes include every ``required`` axis, each with at least
    ``min_levels`` values in the cells."""
    chosen = []
    for study, axes in tables.study_axes().items():
        if not set(required) <= set(axes):
            continue
        cells = tables.study_cells(study)
        if all(cells[axis].nunique(dropna=False) >= min_levels for axis in required):
            chosen.append(study)
    return chosen


def other_axes(axes: Sequence[str], *exclude: str) -> list[str]:
    """The grid axes without ``exclude`` and the seed axis."""
    return [axis for axis in axes if axis not in exclude and axis != SEED_AXIS]


def panel_title(
    study: str, frame: pd.DataFrame, study_axes: Sequence[str], shown: Sequence[str]
) -> str:
    """``study: dataset, model, axis=value, ...`` for one panel's cells, with the values
    of the ``shown`` axes (uniform within the panel); the model carries its depth unless
    depth is an axis."""
    parts = []
    for column in ("dataset", "model"):
        if column in frame.columns and column not in study_axes and frame[column].nunique() == 1:
            value = frame[column].iloc[0]
            depth = frame["depth"].iloc[0] if "depth" in frame.columns else None
            if column == "model" and "depth" not in study_axes and pd.notna(depth):
                value = f"{value}{int(depth)}"
            parts.append(str(value))
    parts += [level_label(a, frame[a].iloc[0]) for a in shown if frame[a].nunique() <= 1]
    return f"{study}: {', '.join(parts)}" if parts else study


@dataclass
class Line:
    """One plotted line: its label, colour, style, the cells it averages, and whether its
    interval is a band (few lines) or error bars (many lines, where bands would hide
    each other)."""

    label: str
    color: str
    linestyle: str
    rows: pd.DataFrame
    band: bool = True


@dataclass
class Panel:
    """One panel of a figure: a title and its lines."""

    title: str
    lines: list[Line]
    rows: pd.DataFrame


def varying_axes(frame: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The ``axes`` with more than one value among the cells of ``frame``."""
    return [axis for axis in axes if frame[axis].nunique(dropna=False) > 1]


def split_lines(
    frame: pd.DataFrame, axes: list[str], max_lines: int
) -> tuple[list[str], list[str]]:
    """(line axes, panel axes) from ``axes``: all lines in one panel if there are at most
    ``max_lines``, else one axis moves to the panels, the one that keeps the lines within
    ``max_lines`` with the fewest panels (or, failing that, leaves the fewest lines)."""
    if len(stats_common.grouped_by(frame, axes)) <= max_lines or len(axes) < 2:
        return axes, []

    def cost(axis: str) -> tuple[int, int]:
        lines = len(stats_common.grouped_by(frame, [a for a in axes if a != axis]))
        panels = frame[axis].nunique(dropna=False)
        return (0, panels) if lines <= max_lines else (1, lines)

    panel_axis = min(axes, key=cost)
    return [a for a in axes if a != panel_axis], [panel_axis]


def panels_for(
    tables: Tables,
    study: str,
    line_axes: Sequence[str],
    exclude: Sequence[str] = (),
    max_lines: int = 8,
    styled: bool = True,
) -> list[Panel]:
    """The panels of one study: one per combination of the varying axes other than
    ``line_axes``, ``exclude`` and seed; in each, one line per combination of the
    ``line_axes`` that vary in the study (of every other varying axis if none does;
    :func:`split_lines` moves one to the panels when there are too many lines). Axes
    with a single value go into the titles. ``styled``: see :func:`line_styles`."""
    axes = tables.study_axes()[study]
    frame = tables.study_cells(study)
    varying = varying_axes(frame, other_axes(axes, *exclude))
    lines_by = [a for a in line_axes if a in varying]
    panel_by = [a for a in varying if a not in lines_by]
    if not lines_by:
        lines_by, panel_by = split_lines(frame, panel_by, max_lines)
    shown = [a for a in other_axes(axes, *exclude) if a not in lines_by]
    line_keys = sorted_keys(lines_by, [key for key, _ in stats_common.grouped_by(frame, lines_by)])
    styles = line_styles(lines_by, line_keys, styled)
    panels = []
    for _, rows in sorted_groups(frame, panel_by):
        lines = [
            Line(
                label=condition_label(lines_by, line_key),
                color=styles[line_key][0],
                linestyle=styles[line_key][1],
                rows=line_rows,
                band=len(line_keys) <= MAX_BANDS,
            )
            for line_key, line_rows in sorted_groups(rows, lines_by)
        ]
        panels.append(Panel(panel_title(study, rows, axes, shown), lines, rows))
    return panels


def sorted_keys(axes: Sequence[str], keys: Iterable[tuple]) -> list[tuple]:
    """Keys of ``axes`` combinations ordered level by level (:func:`ordered_levels`)."""
    keys = list(keys)
    if not axes:
        return keys
    orders = [ordered_levels(axis, [k[i] for k in keys]) for i, axis in enumerate(axes)]
    return sorted(
        keys,
        key=lambda k: [orders[i].index(comparison_specs.python_value(v)) for i, v in enumerate(k)],
    )


def sorted_groups(frame: pd.DataFrame, axes: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    groups = dict(stats_common.grouped_by(frame, list(axes)))
    return [(key, groups[key]) for key in sorted_keys(axes, groups)]


def conditions(tables: Tables, study: str) -> list[tuple[str, pd.DataFrame]]:
    """(title, cells) for every combination of the study's axes other than seed."""
    axes = tables.study_axes()[study]
    frame = tables.study_cells(study)
    by = other_axes(axes)
    return [(panel_title(study, rows, axes, by), rows) for _, rows in sorted_groups(frame, by)]
