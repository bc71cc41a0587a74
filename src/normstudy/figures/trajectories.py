"""Probe quantities against training time, one line per normalizer: the shared drawing of
the figures that follow a measurement through training (``ics``, ``smoothness``,
``norms_training``). Each of those is one small module with its :class:`Quantity` list.

A quantity recorded per layer is averaged over the cell's layers at each time before the
seeds are summarised, so a line is one number per cell and time, as in the papers'
figures that follow one network through training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from normstudy.figures.drawing import figure_legend, new_figure, per_study_files
from normstudy.figures.intervals import INTERVAL_TEXT, draw_mean_band, fit_to_data, summarize_series
from normstudy.figures.metrics import METRICS
from normstudy.figures.probe_records import MODEL, probe_labels, timed_records
from normstudy.figures.registry import FigureResult, skip
from normstudy.figures.selection import panels_for
from normstudy.figures.style import set_panel_titles
from normstudy.figures.tables import Tables
from normstudy.figures.text import count_diverged, diverged_text, seeds_text


@dataclass(frozen=True)
class Quantity:
    """One column of panels: the record ``key``, the :data:`METRICS` entry that labels and
    bounds its axis, and the panel heading."""

    key: str
    metric: str
    heading: str
    first_layer: int = 0  # layers before it are left out of the mean (ICS: layer 0 is 0)


def per_cell(records: pd.DataFrame, quantity: Quantity) -> pd.DataFrame:
    """``cell_id``, ``time``, ``value`` of the quantity: the whole-model record where there
    is one, else the mean over the cell's layers from ``first_layer`` at each time."""
    rows = records[records["key"] == quantity.key]
    model = rows[rows["layer"] == MODEL]
    layers = rows[(rows["layer"] != MODEL) & ~rows["cell_id"].isin(model["cell_id"])]
    layers = layers[layers["layer_index"] >= quantity.first_layer]
    averaged = layers.groupby(["cell_id", "time"], as_index=False)["value"].mean()
    return pd.concat([model[["cell_id", "time", "value"]], averaged], ignore_index=True)


def draw_quantity(ax, panel, records: pd.DataFrame, quantity: Quantity) -> list[int]:
    metric = METRICS[quantity.metric]
    series = per_cell(records, quantity)
    counts = []
    for line in panel.lines:
        found = series[series["cell_id"].isin(line.rows["cell_id"])]
        if found.empty:
            continue
        summary = summarize_series(found, ["time"], "value", log=metric.log)
        draw_mean_band(ax, summary["time"], summary, line, marker=".", metric=metric)
        counts += summary["n"].tolist()
    if metric.log and not series.empty:
        ax.set_yscale("log")
    fit_to_data(ax, metric)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.label)
    if series.empty:
        ax.text(
            0.5, 0.5, f"no {quantity.key} records", ha="center", va="center", transform=ax.transAxes
        )
    return counts


def study_figure(tables: Tables, study: str, records: pd.DataFrame, quantities: Sequence[Quantity]):
    panels = [
        p
        for p in panels_for(tables, study, ["norm"], max_lines=8)
        if records["cell_id"].isin(p.rows["cell_id"]).any()
    ]
    fig, axes = new_figure(len(panels), len(quantities), panel_size=(3.4, 2.6))
    counts, handles, titles = [], {}, []
    for axes_row, panel in zip(axes, panels, strict=True):
        found = records[records["cell_id"].isin(panel.rows["cell_id"])]
        for ax, quantity in zip(axes_row, quantities, strict=True):
            counts += draw_quantity(ax, panel, found, quantity)
            ax.set_title(quantity.heading, loc="left", fontsize=9)
            for handle in ax.get_lines():
                handles.setdefault(handle.get_label(), handle)
        titles.append(panel.title + diverged_text(panel.rows))
    if len(panels) > 1:
        set_panel_titles(fig, axes[:, 0], titles)
    elif titles[0]:
        fig.suptitle(titles[0], x=0.01, ha="left", fontsize=10)
    diverged = sum(count_diverged(p.rows) for p in panels)
    note = (
        f"mean over seeds ({seeds_text(counts)}; geometric on log axes), {INTERVAL_TEXT}; "
        f"per-layer records averaged over layers; diverged cells: {diverged} (non-finite "
        "records left out)"
    )
    figure_legend(fig, list(handles.values()), note)
    return fig


def render_trajectories(
    name: str, tables: Tables, out_dir: Path, probe: str, quantities: Sequence[Quantity]
) -> FigureResult:
    """One file per study whose cells recorded the first quantity: ``<name>-<study>``."""
    labels = probe_labels(tables.probes, quantities[0].key)
    if not labels:
        return skip(name, f"no {probe} probe records in the probes table")
    records = timed_records(tables, labels)
    records = records[records["key"].isin([q.key for q in quantities])]
    return per_study_files(
        name,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, records, quantities),
        records["cell_id"],
        f"no {probe} records",
        f"no finite {probe} records",
    )
