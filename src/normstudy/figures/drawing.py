"""Drawing and writing: figure grids, chance and divergence marks, value ticks, one legend
per figure, and PNG/PDF files written atomically (Agg canvas, no pyplot state)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from normstudy.figures.registry import FigureResult, skip
from normstudy.figures.style import (
    CHANCE_COLOR,
    DIVERGED_COLOR,
    number_text,
)
from normstudy.figures.tables import Tables
from normstudy.io import atomic_path


def new_figure(
    nrows: int, ncols: int, panel_size: tuple[float, float] = (3.4, 2.6), **kwargs
) -> tuple[Figure, np.ndarray]:
    """A figure with an ``nrows`` x ``ncols`` grid of axes (a 2-d array)."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    ncols = min(n, max_cols)
    return math.ceil(n / ncols), ncols


def mark_diverged(ax, x, y) -> int:
    """Red × at each diverged cell; returns how many were drawn."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size:
        ax.scatter(x, y, marker="x", s=36, color=DIVERGED_COLOR, linewidths=1.4, zorder=5)
    return int(x.size)


def diverged_handle(count: int, where: str = "× at chance") -> Line2D:
    return Line2D(
        [],
        [],
        linestyle="none",
        marker="x",
        markersize=6,
        markeredgewidth=1.4,
        color=DIVERGED_COLOR,
        label=f"diverged cells: {count} ({where})",
    )


def chance_line(ax, chance: float | None, scale: float = 100.0) -> Line2D | None:
    if chance is None:
        return None
    return ax.axhline(
        chance * scale, color=CHANCE_COLOR, linestyle=":", linewidth=1.0, label="chance"
    )


def style_handle(label: str, linestyle: str, color: str = "#444444") -> Line2D:
    """A legend entry for a line style shared by every colour (train vs test, ...)."""
    return Line2D([], [], color=color, linestyle=linestyle, label=label)


def chance_handle() -> Line2D:
    return Line2D([], [], color=CHANCE_COLOR, linestyle=":", linewidth=1.0, label="chance")


def value_ticks(ax, values: Iterable[float], axis: str = "x", log: bool | None = None) -> None:
    """Tick an axis at the plotted values (at most 12), written as plain numbers; a log
    axis when ``log`` (default: when the positive values span more than a factor of 4)."""
    values = sorted({float(v) for v in values if v is not None and np.isfinite(v)})
    if not values:
        return
    if log is None:
        log = values[0] > 0 and values[-1] / values[0] > 4
    target = ax.xaxis if axis == "x" else ax.yaxis
    if log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_minor_locator(matplotlib.ticker.NullLocator())
    if len(values) <= 12:
        target.set_major_locator(matplotlib.ticker.FixedLocator(values))
        target.set_major_formatter(
            matplotlib.ticker.FixedFormatter([number_text(v) for v in values])
        )


CHAR_INCHES = 0.065
LINE_INCHES = 0.19


def figure_legend(
    fig: Figure,
    handles: list,
    note: str | None = None,
    ncols: int | None = None,
    where: str | None = None,
):
    """One legend for the whole figure, with ``note`` as its title: to the right of a
    narrow figure, else below the panels; the figure grows to make room."""
    # Labels starting with '_' are matplotlib's mark of artists kept out of legends.
    handles = [h for h in handles if h is not None and not h.get_label().startswith("_")]
    unique = list({h.get_label(): h for h in handles}.values())
    longest = max((len(h.get_label()) for h in unique), default=10)
    entry = 0.6 + CHAR_INCHES * longest
    width, height = fig.get_figwidth(), fig.get_figheight()
    where = where or ("right" if width < 5 else "bottom")
    if where == "right":
        text_width = max(longest + 8, 40)
        note = textwrap.fill(note, text_width) if note else None
        fig.set_figwidth(width + 0.3 + CHAR_INCHES * text_width)
        return fig.legend(
            handles=unique, loc="outside right upper", ncols=1, title=note, alignment="left"
        )
    if ncols is None:
        ncols = max(1, min(len(unique), 4, int(width // entry)))
    note = textwrap.fill(note, int(width / CHAR_INCHES)) if note else None
    lines = math.ceil(len(unique) / ncols) + (note.count("\n") + 1 if note else 0)
    fig.set_figheight(height + LINE_INCHES * lines + 0.15)
    return fig.legend(
        handles=unique, loc="outside lower center", ncols=ncols, title=note, alignment="center"
    )


def figure_texts(fig: Figure) -> list[str]:
    """Every non-empty text of the figure (titles, labels, tick labels, legends)."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf atomically; returns both paths.

    The layout computed for the PNG is kept for the PDF (the layout engine is switched
    off after the first save), so both show the same figure and it is laid out once.
    """
    written = []
    for fmt in ("png", "pdf"):
        path = out_dir / f"{stem}.{fmt}"
        metadata = {"Software": None} if fmt == "png" else {"CreationDate": None}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=metadata)
        fig.set_layout_engine("none")
        written.append(path)
    return written


def finish(result: FigureResult, fig: Figure, out_dir: Path, stem: str) -> None:
    """Save ``fig`` as ``stem`` into ``result`` (paths and texts)."""
    result.written += save(fig, out_dir, stem)
    result.texts += figure_texts(fig)


def per_study_files(
    name: str,
    tables: Tables,
    out_dir: Path,
    draw: Callable[[str], Figure],
    cells_with_data: pd.Series,
    missing: str,
    nothing_drawn: str | None,
) -> FigureResult:
    """One file per study that has data (``<name>-<study>``), drawn by ``draw(study)``.

    A study none of whose cells is in ``cells_with_data`` gets the note
    ``study <study>: <missing>``; when no file was written and ``nothing_drawn`` is given,
    the figure is skipped with that reason and the notes.
    """
    result = FigureResult(name)
    for study in tables.study_axes():
        if not cells_with_data.isin(tables.study_cells(study)["cell_id"]).any():
            result.notes.append(f"study {study}: {missing}")
            continue
        finish(result, draw(study), out_dir, file_stem(name, study))
    if not result.written and nothing_drawn is not None:
        return skip(name, f"{nothing_drawn}; " + "; ".join(result.notes))
    return result


def file_stem(name: str, variant: str | None = None) -> str:
    """``name`` or ``name-variant`` with the variant made safe for a file name."""
    if variant is None:
        return name
    safe = "".join(c if c.isalnum() or c in "._=+" else "_" for c in variant)
    return f"{name}-{safe}"
