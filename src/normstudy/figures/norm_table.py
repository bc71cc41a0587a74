"""Test accuracy of every normalizer in every condition ("Is Batch Norm unique?", table 3).

Written three ways: a heatmap with annotated cells, ``norm_table.csv`` (one row per
normalizer and column, machine-readable) and ``norm_table.md`` (the table as text).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from normstudy import stats_common
from normstudy.figures.drawing import file_stem, finish, new_figure
from normstudy.figures.intervals import summarize
from normstudy.figures.metrics import MIN_SEEDS_FOR_INTERVAL
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import other_axes, studies_with
from normstudy.figures.style import NORM_LABELS, level_label, ordered_levels
from normstudy.figures.tables import Tables
from normstudy.io import write_text_atomic

NAME = "norm_table"
METRIC = "final_test_acc"
TIE = 1e-12
MAX_COLUMNS = 12
CSV_COLUMNS = [
    "study",
    "column",
    "dataset",
    "model",
    "condition",
    "norm",
    "n",
    "n_diverged",
    "test_acc_mean",
    "test_acc_ci_low",
    "test_acc_ci_high",
    "test_acc_min",
    "test_acc_max",
    "interval",
    "best",
]
SEED_RANGE = "range of the seeds"
T_INTERVAL = "95% Student-t"
EXPLANATION = (
    f"final test accuracy (%): mean over seeds, then with at least {MIN_SEEDS_FOR_INTERVAL} "
    f"seeds ± half-width of the {T_INTERVAL} interval, with fewer the {SEED_RANGE} "
    "[lowest–highest] and n; diverged cells count as chance accuracy"
)


def column_label(frame: pd.DataFrame, axes: list[str], key: tuple) -> str:
    """``dataset/model<depth>`` and the other axes' values of one column."""
    dataset = "/".join(str(v) for v in frame["dataset"].unique())
    model = "/".join(str(v) for v in frame["model"].unique())
    if frame["depth"].nunique() == 1 and pd.notna(frame["depth"].iloc[0]):
        model += str(int(frame["depth"].iloc[0]))
    parts = [f"{dataset}/{model}"]
    parts += [
        level_label(a, v)
        for a, v in zip(axes, key, strict=True)
        if a not in ("dataset", "model", "depth")
    ]
    return "\n".join(parts)


def table_rows(tables: Tables, studies: list[str]) -> pd.DataFrame:
    """One row per (study, column, normalizer) with the CSV columns."""
    rows = []
    for study in studies:
        axes = tables.study_axes()[study]
        frame = tables.study_cells(study)
        column_axes = other_axes(axes, "norm")
        for key, group in stats_common.grouped_by(frame, column_axes):
            label = f"{study}:\n{column_label(group, column_axes, key)}"
            summary = summarize(group, ["norm"], METRIC)
            condition = stats_common.condition_json(column_axes, key)
            for record in summary.to_dict("records"):
                rows.append(
                    {
                        "study": study,
                        "column": label,
                        "dataset": "/".join(map(str, group["dataset"].unique())),
                        "model": "/".join(map(str, group["model"].unique())),
                        "condition": condition,
                        "norm": record["norm"],
                        "n": record["n"],
                        "n_diverged": record["n_diverged"],
                        "test_acc_mean": record["mean"],
                        "test_acc_ci_low": record["ci_low"],
                        "test_acc_ci_high": record["ci_high"],
                        "test_acc_min": min(record["values"], default=math.nan),
                        "test_acc_max": max(record["values"], default=math.nan),
                        "interval": (
                            T_INTERVAL if record["n"] >= MIN_SEEDS_FOR_INTERVAL else SEED_RANGE
                        ),
                    }
                )
    table = pd.DataFrame(rows, columns=CSV_COLUMNS[:-1])
    table["best"] = best_flags(table)
    return table


def best_flags(table: pd.DataFrame) -> pd.Series:
    """True for the highest mean of its column (every tied one)."""
    best = table.groupby("column", sort=False)["test_acc_mean"].transform("max")
    return (table["test_acc_mean"] >= best - TIE) & table["test_acc_mean"].notna()


def cell_text(row: pd.Series) -> str:
    """``97.2 ± 0.8`` in percent with enough seeds for an interval, else the mean and
    the seeds' range with n (``78.1 [60.2–96.0] n=2``: two seeds give no precision to
    claim); the diverged count if any."""
    mean = 100 * row["test_acc_mean"]
    if not math.isfinite(mean):
        return "–"
    if row["interval"] == T_INTERVAL:
        half = 100 * (row["test_acc_ci_high"] - row["test_acc_ci_low"]) / 2
        text = f"{mean:.1f} ± {half:.1f}"
    elif row["n"] > 1:
        low, high = 100 * row["test_acc_min"], 100 * row["test_acc_max"]
        text = f"{mean:.1f} [{low:.1f}–{high:.1f}] n={int(row['n'])}"
    else:
        text = f"{mean:.1f} n=1"
    if row["n_diverged"]:
        text += f" ({int(row['n_diverged'])} diverged)"
    return text


def markdown(table: pd.DataFrame, norms: list[str], columns: list[str]) -> str:
    """The table as Markdown: normalizers by columns, the best of each column in bold."""
    lookup = {(r["norm"], r["column"]): r for _, r in table.iterrows()}
    header = ["normalizer", *(c.replace("\n", " ") for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for norm in norms:
        cells = [NORM_LABELS.get(norm, norm)]
        for column in columns:
            row = lookup.get((norm, column))
            text = "" if row is None else cell_text(row)
            cells.append(f"**{text}**" if row is not None and row["best"] else text)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{EXPLANATION[0].upper()}{EXPLANATION[1:]}; **bold**: best mean of the column.",
        "",
    ]
    return "\n".join(lines)


def heatmap(table: pd.DataFrame, norms: list[str], columns: list[str]):
    """Normalizers by columns, coloured by the mean, annotated, the best framed and bold."""
    values = np.full((len(norms), len(columns)), np.nan)
    lookup = {(r["norm"], r["column"]): r for _, r in table.iterrows()}
    for i, norm in enumerate(norms):
        for j, column in enumerate(columns):
            if (norm, column) in lookup:
                values[i, j] = 100 * lookup[(norm, column)]["test_acc_mean"]
    width = 2.2 + 1.45 * len(columns)
    height = 1.6 + 0.55 * len(norms) + 0.12 * max(c.count("\n") for c in columns)
    fig, axes = new_figure(1, 1, panel_size=(width, height))
    ax = axes[0, 0]
    ax.grid(False)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
    colorbar.set_label("test accuracy (%)")
    low, high = np.nanmin(values), np.nanmax(values)
    for i, norm in enumerate(norms):
        for j, column in enumerate(columns):
            row = lookup.get((norm, column))
            if row is None:
                continue
            shade = (values[i, j] - low) / (high - low) if high > low else 0.5
            best = bool(row["best"])
            ax.text(
                j,
                i,
                cell_text(row).replace(" [", "\n[").replace(" (", "\n("),
                ha="center",
                va="center",
                fontsize=7.5,
                fontweight="bold" if best else "normal",
                color="black" if shade > 0.55 or not math.isfinite(shade) else "white",
            )
            if best:
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#C00000", linewidth=2.0
                    )
                )
    ax.set_xticks(range(len(columns)), columns, fontsize=7.5)
    ax.set_yticks(range(len(norms)), [NORM_LABELS.get(n, n) for n in norms])
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(textwrap.fill(EXPLANATION + "; bold, framed: best mean of the column", 110))
    return fig


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """The table over every study with a normalizer axis (two or more normalizers): one
    heatmap, or one per study (``norm_table-<study>``) beyond :data:`MAX_COLUMNS` columns."""
    studies = studies_with(tables, ["norm"], min_levels=2)
    if not studies:
        return skip(
            NAME,
            "no study has a 'norm' grid axis with at least two normalizers; studies and "
            f"axes: {tables.study_axes()}",
        )
    table = table_rows(tables, studies)
    norms = ordered_levels("norm", table["norm"])
    columns = list(dict.fromkeys(table["column"]))
    result = FigureResult(NAME)
    csv = table.assign(column=table["column"].str.replace("\n", " "))
    write_text_atomic(out_dir / f"{NAME}.csv", csv.to_csv(index=False))
    write_text_atomic(out_dir / f"{NAME}.md", markdown(table, norms, columns))
    result.written += [out_dir / f"{NAME}.csv", out_dir / f"{NAME}.md"]
    if len(columns) <= MAX_COLUMNS:
        finish(result, heatmap(table, norms, columns), out_dir, NAME)
        return result
    for study, rows in table.groupby("study", sort=False):
        study_norms = ordered_levels("norm", rows["norm"])
        study_columns = list(dict.fromkeys(rows["column"]))
        figure = heatmap(rows, study_norms, study_columns)
        finish(result, figure, out_dir, file_stem(NAME, study))
    return result


def read_csv(path: Path) -> pd.DataFrame:
    """``norm_table.csv`` back as a frame (condition JSON kept as text)."""
    return pd.read_csv(path, converters={"condition": str})
