"""Accuracy against one grid axis (depth, batch size, learning rate, examples per class):
the skeleton that every metric-against-an-axis figure shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from matplotlib.figure import Figure

from normstudy import stats_common
from normstudy.figures.drawing import (
    chance_handle,
    chance_line,
    diverged_handle,
    figure_legend,
    grid_shape,
    hide_unused,
    mark_diverged,
    new_figure,
    value_ticks,
)
from normstudy.figures.intervals import (
    INTERVAL_TEXT,
    draw_mean_band,
    fit_to_data,
    summarize,
)
from normstudy.figures.metrics import METRICS
from normstudy.figures.selection import Line, panels_for
from normstudy.figures.style import (
    axis_label,
    set_panel_titles,
)
from normstudy.figures.tables import Tables
from normstudy.figures.text import chance_accuracy, seeds_text


def metric_figure(
    tables: Tables,
    studies: Sequence[str],
    x: str,
    line_axes: Sequence[str],
    metrics: Sequence[str],
    relabel: Callable[[Line, str], str] | None = None,
) -> Figure:
    """Accuracy ``metrics`` (columns) against axis ``x`` (log axis when its values span
    more than a factor of 4), one line per value of ``line_axes``, one row per panel of
    each study (its other axes); means over seeds with intervals or seed dots
    (:func:`draw_mean_band`), the shared value axis fitted to the data, diverged cells
    counted at chance and drawn as red × there (in every metric's panel; the legend counts
    each cell once), chance dotted."""
    panels = [p for s in studies for p in panels_for(tables, s, line_axes, exclude=[x])]
    single = len(metrics) == 1
    shape = grid_shape(len(panels)) if single else (len(panels), len(metrics))
    # Every panel shows an accuracy in percent: one shared scale makes them comparable.
    fig, axes = new_figure(*shape, panel_size=(3.6, 2.8), sharey=True)
    cells = [(ax, panel, metrics[0]) for ax, panel in zip(axes.ravel(), panels, strict=False)]
    if not single:
        cells = [
            (ax, panel, metric)
            for row, panel in zip(axes, panels, strict=True)
            for ax, metric in zip(row, metrics, strict=True)
        ]
    handles, counts, diverged = {}, [], set()
    for ax, panel, metric in cells:
        for line in panel.lines:
            summary = summarize(line.rows, [x], metric)
            if relabel is not None:
                line = Line(relabel(line, metric), line.color, line.linestyle, line.rows, line.band)
            handle = draw_mean_band(
                ax, summary[x], summary, line, scale=100, metric=METRICS[metric]
            )
            handles.setdefault(handle.get_label(), handle)
            counts += summary["n"].tolist()
            failed = line.rows[stats_common.failed_cells(line.rows, metric)]
            chance = chance_accuracy(failed) or 0.0
            mark_diverged(ax, failed[x], [100 * chance] * len(failed))
            diverged.update(failed["cell_id"])
        chance_line(ax, chance_accuracy(panel.rows))
        value_ticks(ax, panel.rows[x].dropna().astype(float))
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(METRICS[metric].label)
        ax.yaxis.set_tick_params(labelleft=True)
    hide_unused(axes, len(cells))
    fit_to_data([ax for ax, _, _ in cells], METRICS["accuracy"])
    titles = [panel.title for _, panel, _ in cells]
    if not single:
        titles = [t if i % len(metrics) == 0 else "" for i, t in enumerate(titles)]
    set_panel_titles(fig, [ax for ax, _, _ in cells], titles)
    note = f"mean over seeds ({seeds_text(counts)}), {INTERVAL_TEXT}"
    legend = list(handles.values()) + [chance_handle(), diverged_handle(len(diverged))]
    figure_legend(fig, legend, note)
    return fig
