"""Information propagation and gradient confusion through depth and over training ("Is
Batch Norm unique?" 2020, §4-5, figures 1-3), from the ``propagation`` and
``grad_confusion`` probes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from normstudy.figures.drawing import figure_legend, new_figure, per_study_files
from normstudy.figures.intervals import INTERVAL_TEXT, draw_mean_band, fit_to_data, summarize_series
from normstudy.figures.metrics import METRICS
from normstudy.figures.probe_records import MODEL, last_records, probe_labels, timed_records
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Panel, panels_for
from normstudy.figures.style import set_panel_title, shared_titles
from normstudy.figures.tables import Tables
from normstudy.figures.text import count_diverged, diverged_text, seeds_text

NAME = "propagation"
PROPAGATION_KEY = "correlation"
CONFUSION_KEY = "grad_correlation_mean"
LAYER_LABEL = "normalised layer (0 = first)"
STEP_LABEL = "optimizer step (log; 0 = init)"


def by_layer(records: pd.DataFrame, key: str, at_init: bool) -> pd.DataFrame:
    """Per-layer records of ``key`` at init (step 0) or at each cell's last record."""
    rows = records[(records["key"] == key) & (records["layer"] != MODEL)]
    return rows[rows["step"] == 0] if at_init else last_records(rows)


def last_layer(records: pd.DataFrame, key: str) -> pd.DataFrame:
    """Records of ``key`` at each cell's deepest normalised layer, over training."""
    rows = records[(records["key"] == key) & (records["layer"] != MODEL)]
    deepest = rows.groupby("cell_id")["layer_index"].transform("max")
    return rows[rows["layer_index"] == deepest]


def whole_model(records: pd.DataFrame, key: str) -> pd.DataFrame:
    return records[(records["key"] == key) & (records["layer"] == MODEL)]


def draw_lines(ax, panel: Panel, rows: pd.DataFrame, x: str, log: bool = False) -> list[int]:
    """Mean and band of each line against ``x``: correlations (within [-1, 1]), or
    gradient norms on a log axis (``log``)."""
    metric = METRICS["grad_norm" if log else "correlation"]
    counts = []
    for line in panel.lines:
        found = rows[rows["cell_id"].isin(line.rows["cell_id"])]
        if found.empty:
            continue
        summary = summarize_series(found, [x], "value", log=log)
        draw_mean_band(ax, summary[x], summary, line, marker=".", metric=metric)
        counts += summary["n"].tolist()
    if log and not rows.empty:
        ax.set_yscale("log")
    fit_to_data(ax, metric)
    if x == "layer_index":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(LAYER_LABEL)
    else:
        # "Is Batch Norm unique?" §5: the first ~1,000 steps decide; a log step axis
        # shows them beside the rest of training (0 = init, linear up to step 1)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(STEP_LABEL)
    return counts


def propagation_row(axes_row, panel: Panel, records: pd.DataFrame) -> list[int]:
    counts = draw_lines(axes_row[0], panel, by_layer(records, PROPAGATION_KEY, True), "layer_index")
    counts += draw_lines(
        axes_row[1], panel, by_layer(records, PROPAGATION_KEY, False), "layer_index"
    )
    counts += draw_lines(axes_row[2], panel, last_layer(records, PROPAGATION_KEY), "step")
    titles = ("at initialisation", "at the last record", "last normalised layer")
    for ax, title in zip(axes_row, titles, strict=True):
        ax.set_ylabel("representation correlation")
        ax.set_title(title, loc="left")
    return counts


def confusion_row(axes_row, panel: Panel, records: pd.DataFrame) -> list[int]:
    counts = draw_lines(axes_row[0], panel, by_layer(records, CONFUSION_KEY, True), "layer_index")
    counts += draw_lines(axes_row[1], panel, whole_model(records, CONFUSION_KEY), "step")
    counts += draw_lines(
        axes_row[2], panel, by_layer(records, "grad_norm", True), "layer_index", log=True
    )
    axes_row[0].set_ylabel("gradient correlation")
    axes_row[0].set_title("at initialisation", loc="left")
    axes_row[1].set_ylabel("gradient correlation")
    axes_row[1].set_title("whole model", loc="left")
    axes_row[2].set_ylabel("gradient norm (L2, layer)")
    axes_row[2].set_title("at initialisation", loc="left")
    return counts


ROWS = (
    ("information propagation", PROPAGATION_KEY, propagation_row),
    ("gradient confusion", CONFUSION_KEY, confusion_row),
)


def study_figure(tables: Tables, study: str, records: pd.DataFrame):
    rows = []
    for panel in panels_for(tables, study, ["norm"], max_lines=8):
        found = records[records["cell_id"].isin(panel.rows["cell_id"])]
        rows += [(panel, name, draw) for name, key, draw in ROWS if (found["key"] == key).any()]
    fig, axes = new_figure(len(rows), 3, panel_size=(3.4, 2.6))
    counts, handles, subtitles = [], {}, []
    for axes_row, (panel, name, draw) in zip(axes, rows, strict=True):
        counts += draw(axes_row, panel, records[records["cell_id"].isin(panel.rows["cell_id"])])
        subtitles.append(f"{name}: {axes_row[0].get_title(loc='left')}")
        for ax in axes_row:
            for handle in ax.get_lines():
                handles.setdefault(handle.get_label(), handle)
    common, titles = shared_titles([p.title + diverged_text(p.rows) for p, _, _ in rows])
    for ax, title, subtitle in zip(axes[:, 0], titles, subtitles, strict=True):
        set_panel_title(ax, f"{title}\n{subtitle}" if title else subtitle)
    if common:
        fig.suptitle(common, x=0.01, ha="left", fontsize=10)
    diverged = sum(count_diverged(p.rows) for p in {id(p): p for p, _, _ in rows}.values())
    note = (
        f"mean over seeds ({seeds_text(counts)}), {INTERVAL_TEXT}; gradient norm: on the "
        f"log scale; diverged cells: {diverged} (failed records left out)"
    )
    figure_legend(fig, list(handles.values()), note)
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One file per study with propagation or grad_confusion records."""
    labels = probe_labels(tables.probes, PROPAGATION_KEY) + probe_labels(
        tables.probes, CONFUSION_KEY
    )
    if not labels:
        return skip(NAME, "no propagation or grad_confusion probe records in the probes table")
    records = timed_records(tables, labels)
    return per_study_files(
        NAME,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, records),
        records["cell_id"],
        "no propagation or grad_confusion records",
        "no finite propagation records",
    )
