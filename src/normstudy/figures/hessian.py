"""Hessian spectrum by normalizer ("Is Batch Norm unique?" 2020, §6, figures 4 and 6):
the top eigenvalue and the outlier ratio over training, and the spectral density by
stochastic Lanczos quadrature (Ghorbani et al. 2019), from the ``hessian`` probe."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from normstudy.figures.drawing import figure_legend, new_figure, per_study_files
from normstudy.figures.intervals import INTERVAL_TEXT, draw_mean_band, fit_to_data, summarize_series
from normstudy.figures.metrics import METRICS
from normstudy.figures.probe_records import MODEL, last_records, probe_labels, timed_records
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Panel, panels_for
from normstudy.figures.style import set_panel_titles
from normstudy.figures.tables import Tables
from normstudy.figures.text import diverged_text, seeds_text
from normstudy.spectral import slq_density, slq_from_values

NAME = "hessian"
COLUMNS = 4
GRID_POINTS = 600
SIGMA_FRACTION = 0.01
DENSITY_FLOOR = 1e-4
WIDE_RANGE = 20
LAMBDA = re.compile(r"lambda_(\d+)$")


def eigenvalue_count(records: pd.DataFrame) -> int:
    """k, the number of top eigenvalues recorded (the largest ``lambda_<i>``)."""
    indices = [int(m[1]) for m in map(LAMBDA.match, records["key"].unique()) if m]
    return max(indices, default=0)


def mode_of(records: pd.DataFrame) -> str:
    modes = [
        key.removeprefix("mode_") for key in records["key"].unique() if key.startswith("mode_")
    ]
    return "/".join(sorted(modes)) or "unknown"


def spectrum(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Ritz nodes and weights pooled over the cells of ``records`` (one step each)."""

    nodes, weights = [], []
    for _, cell in records.groupby("cell_id"):
        found = slq_from_values(dict(zip(cell["key"], cell["value"], strict=True)))
        nodes.append(found[0])
        weights.append(found[1])
    if not nodes:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(nodes), np.concatenate(weights)


def density_grid(nodes: np.ndarray) -> tuple[np.ndarray, float]:
    """A grid over one spectrum's nodes and its smoothing width: 1% of its own range, as
    Ghorbani et al. (2019, §2.2) smooth each spectrum after scaling it to [-1, 1]."""
    low, high = float(nodes.min()), float(nodes.max())
    span = high - low if high > low else max(abs(high), 1.0)
    sigma = SIGMA_FRACTION * span
    return np.linspace(low - 5 * sigma, high + 5 * sigma, GRID_POINTS), sigma


def use_symlog(ax, spectra: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A symmetric log axis when one spectrum reaches far beyond another (an outlier
    normalizer would otherwise squeeze the rest into a spike at 0)."""
    reach = [float(np.abs(nodes).max()) for nodes, _ in spectra if nodes.size]
    smallest, largest = min(reach), max(reach)
    if smallest <= 0 or largest <= WIDE_RANGE * smallest:
        return
    ax.set_xscale("symlog", linthresh=smallest)
    powers = np.arange(np.ceil(np.log10(smallest)), np.floor(np.log10(largest)) + 1)
    step = max(1, int(np.ceil(len(powers) / 3)))
    ticks = 10.0 ** powers[::step]
    ax.set_xticks(np.concatenate([-ticks[::-1], [0.0], ticks]))
    ax.xaxis.set_minor_locator(NullLocator())


def early_records(records: pd.DataFrame) -> pd.DataFrame:
    """Each cell's records at its first probed step after init, if that is not its last
    (the Hessian "50 steps into training" of "Is Batch Norm unique?" §6, figure 4)."""
    later = records[records["step"] > 0]
    first = later.groupby("cell_id")["step"].transform("min")
    last = records.groupby("cell_id")["step"].transform("max").loc[later.index]
    return later[(later["step"] == first) & (first < last)]


def early_title(records: pd.DataFrame) -> str:
    steps = sorted(early_records(records)["step"].unique())
    return f"at step {steps[0]}" if len(steps) == 1 else "at the first record after init"


SELECT = {
    "init": lambda rows: rows[rows["step"] == 0],
    "early": early_records,
    "last": last_records,
}


def draw_density(ax, panel: Panel, records: pd.DataFrame, when: str) -> None:
    """SLQ density of each line at initialisation (step 0), at each cell's first record
    after init (``early``) or at its last record."""

    slq = records[records["key"].str.startswith("slq_")]
    spectra = []
    for line in panel.lines:
        rows = slq[slq["cell_id"].isin(line.rows["cell_id"])]
        spectra.append(spectrum(SELECT[when](rows)))
    if not any(nodes.size for nodes, _ in spectra):
        ax.text(0.5, 0.5, "no spectrum recorded", ha="center", va="center", transform=ax.transAxes)
        return
    peaks = []
    for line, (nodes, weights) in zip(panel.lines, spectra, strict=True):
        if nodes.size and weights.sum() > 0:
            grid, sigma = density_grid(nodes)
            density = slq_density(nodes, weights, grid, sigma)
            peaks.append(float(density.max()))
            ax.plot(grid, density, color=line.color, linestyle=line.linestyle, label=line.label)
    use_symlog(ax, spectra)
    ax.set_yscale("log")
    ax.set_ylim(min(peaks) * DENSITY_FLOOR, max(peaks) * 2)
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    titles = {"init": "at initialisation", "last": "at the last record"}
    ax.set_title(titles.get(when) or early_title(slq), loc="left")


def draw_over_time(ax, panel: Panel, records: pd.DataFrame, key: str) -> list[int]:
    counts = []
    values = records[records["key"] == key]
    positive = bool((values["value"] > 0).all())
    for line in panel.lines:
        rows = values[values["cell_id"].isin(line.rows["cell_id"])]
        if rows.empty:
            continue
        summary = summarize_series(rows, ["time"], "value", log=positive)
        draw_mean_band(ax, summary["time"], summary, line, marker=".", metric=METRICS[key])
        counts += summary["n"].tolist()
    if positive and not values.empty:
        ax.set_yscale("log")
    fit_to_data(ax, METRICS[key])
    ax.set_xlabel("epoch")
    return counts


def study_rows(tables: Tables, study: str, records: pd.DataFrame):
    """(panel, label, records) per panel of the study and probe label with records."""
    rows = []
    for panel in panels_for(tables, study, ["norm"], max_lines=8):
        found = records[records["cell_id"].isin(panel.rows["cell_id"])]
        for label, by_label in found.groupby("probe", sort=True):
            rows.append((panel, label, by_label))
    return rows


def study_figure(tables: Tables, study: str, records: pd.DataFrame):
    rows = study_rows(tables, study, records)
    labels = {label for _, label, _ in rows}
    slq = records[records["key"].str.startswith("slq_")]
    densities = ["init", "early", "last"] if not early_records(slq).empty else ["init", "last"]
    fig, axes = new_figure(len(rows), COLUMNS + len(densities) - 2, panel_size=(3.2, 2.5))
    counts, diverged, handles, titles = [], set(), {}, []
    for axes_row, (panel, label, found) in zip(axes, rows, strict=True):
        k = eigenvalue_count(found)
        counts += draw_over_time(axes_row[0], panel, found, "lambda_1")
        axes_row[0].set_ylabel(METRICS["lambda_1"].label)
        draw_over_time(axes_row[1], panel, found, "outlier_ratio")
        axes_row[1].set_ylabel(f"outlier ratio λ1/λ{k}")
        for ax, when in zip(axes_row[2:], densities, strict=True):
            draw_density(ax, panel, found, when)
        title = panel.title
        if len(labels) > 1:
            title += f" [{label}, {mode_of(found)} mode]"
        titles.append(title + diverged_text(panel.rows))
        diverged.update(panel.rows.loc[panel.rows["status"] == "diverged", "cell_id"])
        for handle in axes_row[0].get_lines():
            handles.setdefault(handle.get_label(), handle)
    set_panel_titles(fig, axes[:, 0], titles)
    note = (
        f"λ1 and λ1/λk: geometric mean over seeds ({seeds_text(counts)}), {INTERVAL_TEXT}, "
        "on the log scale; density: SLQ pooled over seeds, Gaussian σ = 1% of each "
        f"spectrum's range; diverged cells: {len(diverged)} (failed records left out)"
    )
    figure_legend(fig, list(handles.values()), note)
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One file per study with ``hessian`` records: ``hessian-<study>``."""
    labels = probe_labels(tables.probes, "lambda_1")
    if not labels:
        return skip(NAME, "no hessian probe records (lambda_1) in the probes table")
    records = timed_records(tables, labels)
    records = records[records["layer"] == MODEL]
    return per_study_files(
        NAME,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, records),
        records.loc[records["key"] == "lambda_1", "cell_id"],
        "no hessian records",
        "no finite hessian records",
    )
