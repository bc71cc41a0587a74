"""Distributions of γ and β, all trained vs BN-only (Torri 2022, figures 4-5; Frankle et
al. 2020, §5), from the ``norm_params`` probe's whole-model histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from normstudy.figures.drawing import figure_legend, new_figure, per_study_files, style_handle
from normstudy.figures.probe_records import MODEL, last_records, probe_labels, timed_records
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Panel, panels_for
from normstudy.figures.style import set_panel_title
from normstudy.figures.tables import Tables
from normstudy.figures.text import count_diverged
from normstudy.wording import plural

NAME = "gamma_beta"
PARAMETERS = ("gamma", "beta")
SYMBOLS = {"gamma": "γ", "beta": "β"}
OFF_THRESHOLD = "0.05"
INIT_COLOR = "#BBBBBB"


def histogram(records: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Bin edges, counts pooled over the cells of ``records``, and how many values fell
    outside the range (``hist_<what>_under`` + ``_over``); None without a histogram."""
    prefix = f"hist_{what}/"
    bins = records[records["key"].str.startswith(prefix)]
    if bins.empty:
        return None
    left = bins["key"].str.slice(len(prefix)).astype(float)
    counts = bins.groupby(left.to_numpy())["value"].sum().sort_index()
    lefts = counts.index.to_numpy(dtype=float)
    width = float(np.min(np.diff(lefts))) if lefts.size > 1 else 1.0
    edges = np.append(lefts, lefts[-1] + width)
    outside = records.loc[
        records["key"].isin([f"hist_{what}_under", f"hist_{what}_over"]), "value"
    ].sum()
    return edges, counts.to_numpy(dtype=float), int(outside)


def fractions(counts: np.ndarray, outside: int) -> np.ndarray:
    total = counts.sum() + outside
    return counts / total if total > 0 else counts


def off_fraction(records: pd.DataFrame) -> float:
    """Mean over cells of the fraction of |γ| below 0.05."""
    values = records.loc[records["key"] == f"frac_abs_gamma_below/{OFF_THRESHOLD}", "value"]
    return float(values.mean()) if len(values) else float("nan")


def spike_cut(peaks: list[float]) -> float | None:
    """The axis top that leaves out the spikes: the peaks that stand more than twice
    above every lower one (β = 0 at init and while β is frozen: often two such spikes,
    which a rule about the single largest peak would miss), or None when there are none."""
    ordered = sorted(p for p in peaks if p > 0)
    for index in range(1, len(ordered)):
        if ordered[index] > 2 * ordered[index - 1]:
            return 1.15 * ordered[index - 1]
    return None


def clip_spikes(ax, series: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Cut the axis above the histograms that are not spikes and write each cut
    spike's share and bin, so that a frozen β does not flatten the trained ones."""
    top = spike_cut([share.max(initial=0.0) for _, share, _ in series])
    if top is None:
        return
    ax.set_ylim(0, top)
    notes = [
        f"{name}: {100 * share.max():.0f}% in [{edges[np.argmax(share)]:g}, "
        f"{edges[np.argmax(share) + 1]:g}) (cut)"
        for name, share, edges in series
        if share.max(initial=0.0) > top
    ]
    ax.text(
        0.02, 0.98, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=7, color="#555555"
    )


def draw_panel_row(axes_row, panel: Panel, records: pd.DataFrame) -> list:
    """γ and β histograms of one panel: init in grey, the end per line."""
    handles = []
    model_records = records[records["layer"] == MODEL]
    cells = panel.rows.loc[panel.rows["status"] != "diverged", "cell_id"]
    init = model_records[(model_records["cell_id"].isin(cells)) & (model_records["step"] == 0)]
    for ax, what in zip(axes_row, PARAMETERS, strict=True):
        series = []
        start = histogram(init, what)
        if start is not None:
            edges, counts, outside = start
            share = fractions(counts, outside)
            ax.stairs(share, edges, fill=True, color=INIT_COLOR, alpha=0.6, zorder=0)
            series.append(("init", share, edges))
        for line in panel.lines:
            ok = line.rows.loc[line.rows["status"] != "diverged", "cell_id"]
            end = last_records(model_records[model_records["cell_id"].isin(ok)])
            found = histogram(end, what)
            if found is None:
                continue
            edges, counts, outside = found
            label = f"{line.label}: {plural(len(ok), 'cell')}"
            if what == "gamma":
                label += f", {100 * off_fraction(end):.0f}% |γ| < {OFF_THRESHOLD}"
            if outside:
                label += f", {outside} outside the range"
            share = fractions(counts, outside)
            series.append((line.label, share, edges))
            handle = ax.stairs(share, edges, color=line.color, linewidth=1.5, label=label)
            if what == "gamma":
                handles.append(handle)
        clip_spikes(ax, series)
        ax.set_xlabel(SYMBOLS[what])
        ax.set_ylabel("fraction of features")
    return handles


def study_figure(tables: Tables, study: str, records: pd.DataFrame):
    panels = [
        p
        for p in panels_for(tables, study, ["freeze"], max_lines=6)
        if records["cell_id"].isin(p.rows["cell_id"]).any()
    ]
    fig, axes = new_figure(len(panels), 2, panel_size=(3.8, 2.6))
    diverged = 0
    for axes_row, panel in zip(axes, panels, strict=True):
        handles = draw_panel_row(axes_row, panel, records)
        failed = count_diverged(panel.rows)
        diverged += failed
        title = panel.title + (f" ({plural(failed, 'diverged cell')} left out)" if failed else "")
        set_panel_title(axes_row[0], title)
        axes_row[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    note = (
        "histograms at the end of training pooled over seeds; grey: at initialisation; "
        f"diverged cells: {diverged} (left out of the histograms)"
    )
    figure_legend(fig, [style_handle("at initialisation", "-", INIT_COLOR)], note)
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One file per study with ``norm_params`` histograms: ``gamma_beta-<study>``."""
    labels = probe_labels(tables.probes, "num_gamma")
    if not labels:
        return skip(NAME, "no norm_params probe records in the probes table")
    records = timed_records(tables, labels)
    with_hist = records[records["key"].str.startswith("hist_gamma/")]
    if with_hist.empty:
        return skip(
            NAME,
            "the norm_params records hold no γ histogram (models without "
            "normalizers, or every cell diverged)",
        )
    return per_study_files(
        NAME,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, records),
        with_hist["cell_id"],
        "no γ histograms",
        None,
    )
