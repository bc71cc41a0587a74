"""Training curves with seed bands and the generalization gap, one file per study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from normstudy.figures.drawing import (
    diverged_handle,
    figure_legend,
    mark_diverged,
    new_figure,
    per_study_files,
    style_handle,
)
from normstudy.figures.intervals import INTERVAL_TEXT, draw_mean_band, fit_to_data, summarize_series
from normstudy.figures.metrics import METRICS
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Panel, panels_for
from normstudy.figures.style import set_panel_titles
from normstudy.figures.tables import Tables
from normstudy.figures.text import seeds_text

NAME = "curves"
COLUMNS = ("accuracy", "loss", "gap")
TRAIN_STYLE = dict(linestyle="--", marker="", linewidth=1.1)
TEST_STYLE = dict(linestyle="-", marker="")


def with_gap(curves: pd.DataFrame) -> pd.DataFrame:
    """Curves with ``gap`` = training minus test accuracy, in percentage points, and
    non-finite losses masked (a diverging cell's last losses)."""
    curves = curves.copy()
    for column in ("train_loss", "test_loss"):
        values = curves[column].astype(float)
        curves[column] = values.where(np.isfinite(values) & (values > 0))
    curves["gap"] = 100 * (curves["train_acc"].astype(float) - curves["test_acc"].astype(float))
    return curves


def draw_panel_row(axes_row, panel: Panel, curves: pd.DataFrame) -> tuple[list, int, list]:
    """Accuracy, loss and gap of one panel's lines; returns handles, diverged, counts."""
    handles, diverged, counts = [], 0, []
    for line in panel.lines:
        rows = curves[curves["cell_id"].isin(line.rows["cell_id"])]
        if rows.empty:
            continue
        series = {
            column: summarize_series(rows, ["epoch"], column, log=column.endswith("_loss"))
            for column in ("train_acc", "test_acc", "train_loss", "test_loss", "gap")
        }
        counts += series["test_acc"]["n"].tolist()
        ax_acc, ax_loss, ax_gap = axes_row
        epochs = series["test_acc"]["epoch"]
        accuracy, loss, gap = METRICS["accuracy"], METRICS["loss"], METRICS["gap"]
        handles.append(
            draw_mean_band(
                ax_acc, epochs, series["test_acc"], line, scale=100, metric=accuracy, **TEST_STYLE
            )
        )
        draw_mean_band(
            ax_acc, epochs, series["train_acc"], line, scale=100, metric=accuracy, **TRAIN_STYLE
        )
        for column, style in (("test_loss", TEST_STYLE), ("train_loss", TRAIN_STYLE)):
            summary = series[column]
            draw_mean_band(ax_loss, summary["epoch"], summary, line, metric=loss, **style)
        draw_mean_band(
            ax_gap, series["gap"]["epoch"], series["gap"], line, metric=gap, **TEST_STYLE
        )
        failed = line.rows.loc[line.rows["status"] == "diverged", "cell_id"]
        last = rows[rows["cell_id"].isin(failed)].sort_values("epoch").groupby("cell_id").last()
        diverged += mark_diverged(ax_acc, last["epoch"], 100 * last["test_acc"].astype(float))
    return handles, diverged, counts


def loss_ceiling(panel: Panel, curves: pd.DataFrame) -> float | None:
    """Ten times the largest loss of the panel's cells that did not diverge, so that a
    diverging cell's exploding loss leaves the axis instead of flattening the others."""
    ok = panel.rows.loc[panel.rows["status"] != "diverged", "cell_id"]
    losses = curves.loc[curves["cell_id"].isin(ok), ["train_loss", "test_loss"]]
    largest = np.nanmax(losses.to_numpy(dtype=float)) if losses.size else np.nan
    return 10 * float(largest) if np.isfinite(largest) else None


def label_row(axes_row) -> None:
    ax_acc, ax_loss, ax_gap = axes_row
    ax_acc.set_ylabel(METRICS["accuracy"].label)
    ax_loss.set_ylabel(METRICS["loss"].label)
    if any(line.get_ydata().size for line in ax_loss.get_lines()):
        ax_loss.set_yscale("log")
    ax_gap.set_ylabel(METRICS["gap"].label)
    ax_gap.axhline(0, color="#666666", linewidth=0.8)
    for ax in axes_row:
        ax.set_xlabel("epoch")
        ax.yaxis.set_tick_params(labelleft=True)


def fit_columns(axes, ceilings: list[float | None]) -> None:
    """Each column's value axis, shared by its rows, fitted to the data of all of them
    (never to blown-up intervals); the loss axis ends at the largest row's ceiling."""
    fit_to_data(axes[:, 0], METRICS["accuracy"])
    fit_to_data(axes[:, 2], METRICS["gap"])
    if axes[0, 1].get_yscale() == "log":
        fit_to_data(axes[:, 1], METRICS["loss"])
        known = [c for c in ceilings if c is not None]
        if known and len(known) == len(ceilings) and max(known) < axes[0, 1].get_ylim()[1]:
            axes[0, 1].set_ylim(top=max(known))


def study_figure(tables: Tables, study: str, curves: pd.DataFrame):
    panels = panels_for(tables, study, [], max_lines=8, styled=False)
    # Each column shows one quantity in every row: shared scales make the rows comparable.
    fig, axes = new_figure(len(panels), len(COLUMNS), panel_size=(3.3, 2.5), sharey="col")
    handles, diverged, counts = [], 0, []
    for axes_row, panel in zip(axes, panels, strict=True):
        row_handles, row_diverged, row_counts = draw_panel_row(axes_row, panel, curves)
        handles += row_handles
        diverged += row_diverged
        counts += row_counts
        label_row(axes_row)
    fit_columns(axes, [loss_ceiling(panel, curves) for panel in panels])
    set_panel_titles(fig, axes[:, 0], [panel.title for panel in panels])
    style = [
        style_handle("test (evaluation mode)", "-"),
        style_handle("train (running mean over the epoch)", "--"),
    ]
    note = (
        f"mean over seeds ({seeds_text(counts)}), {INTERVAL_TEXT}; losses: geometric "
        "mean, interval on the log scale"
    )
    figure_legend(fig, handles + style + [diverged_handle(diverged, "× at the last epoch")], note)
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One file per study with curves: ``curves-<study>.png``/``.pdf``."""
    if tables.curves.empty:
        return skip(NAME, "the curves table is empty (no finished cell wrote curves)")
    curves = with_gap(tables.curves)
    return per_study_files(
        NAME,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, curves),
        curves["cell_id"],
        "no curves",
        "no study's cells have curves",
    )
