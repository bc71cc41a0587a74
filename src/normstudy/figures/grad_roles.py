"""Gradient magnitude per parameter role over training (G42 2021, §4 and figure 2), from
the ``grad_norms`` probe's whole-model records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from normstudy.figures.drawing import (
    figure_legend,
    grid_shape,
    hide_unused,
    new_figure,
    per_study_files,
)
from normstudy.figures.intervals import INTERVAL_TEXT, draw_mean_band, fit_to_data, summarize_series
from normstudy.figures.metrics import METRICS
from normstudy.figures.probe_records import MODEL, probe_labels, timed_records
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import Line, conditions
from normstudy.figures.style import ROLE_COLORS, ROLE_LABELS, ROLE_ORDER, set_panel_titles
from normstudy.figures.tables import Tables
from normstudy.figures.text import count_diverged, diverged_text, seeds_text

NAME = "grad_roles"
PREFIX = "grad_abs_mean/"


def role_lines(records: pd.DataFrame) -> list[tuple[str, Line]]:
    """(key, line) per parameter role present, in :data:`ROLE_ORDER`."""
    roles = {key.removeprefix(PREFIX) for key in records["key"].unique()}
    ordered = [r for r in ROLE_ORDER if r in roles] + sorted(roles - set(ROLE_ORDER))
    return [
        (
            PREFIX + role,
            Line(
                label=ROLE_LABELS.get(role, role),
                color=ROLE_COLORS.get(role, "#7F7F7F"),
                linestyle="--" if role == "all" else "-",
                rows=records[records["key"] == PREFIX + role],
            ),
        )
        for role in ordered
    ]


def study_figure(tables: Tables, study: str, records: pd.DataFrame):
    panels = [
        (title, rows, records[records["cell_id"].isin(rows["cell_id"])])
        for title, rows in conditions(tables, study)
    ]
    panels = [(title, rows, found) for title, rows, found in panels if not found.empty]
    # Every panel shows the same quantity: one shared scale makes them comparable.
    fig, axes = new_figure(*grid_shape(len(panels), 3), panel_size=(3.4, 2.6), sharey=True)
    handles, counts, diverged = {}, [], 0
    for ax, (_, rows, found) in zip(axes.ravel(), panels, strict=False):
        for key, line in role_lines(found):
            summary = summarize_series(line.rows, ["time"], "value", log=True)
            handles[key] = draw_mean_band(
                ax, summary["time"], summary, line, marker=".", metric=METRICS["grad_magnitude"]
            )
            counts += summary["n"].tolist()
        ax.set_yscale("log")
        ax.yaxis.set_tick_params(labelleft=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean |∂L/∂θ|")
        diverged += count_diverged(rows)
    hide_unused(axes, len(panels))
    used = axes.ravel()[: len(panels)]
    fit_to_data(used, METRICS["grad_magnitude"])
    set_panel_titles(fig, used, [title + diverged_text(rows) for title, rows, _ in panels])
    note = (
        f"geometric mean over seeds ({seeds_text(counts)}), {INTERVAL_TEXT} (on the log "
        f"scale); diverged cells: {diverged} (non-finite records left out)"
    )
    ordered = [handles[PREFIX + r] for r in ROLE_ORDER if PREFIX + r in handles]
    ordered += [h for key, h in handles.items() if key.removeprefix(PREFIX) not in ROLE_ORDER]
    figure_legend(fig, ordered, note, ncols=6)
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """One file per study with ``grad_norms`` records: ``grad_roles-<study>``."""
    labels = probe_labels(tables.probes, PREFIX + "all")
    if not labels:
        return skip(NAME, "no grad_norms probe records in the probes table")
    records = timed_records(tables, labels)
    records = records[(records["layer"] == MODEL) & records["key"].str.startswith(PREFIX)]
    return per_study_files(
        NAME,
        tables,
        out_dir,
        lambda study: study_figure(tables, study, records),
        records["cell_id"],
        "no grad_norms records",
        "no finite grad_norms records",
    )
