"""OLS by gradient descent with and without the Batch Norm reparameterisation (Morwani
2020, §2): residuals and weight trajectories for several condition numbers, d = 2 and 3.

Reads ``ols.parquet`` from the tables directory (columns kappa, d, method "gd"/"bn", lr,
step, loss, w_0, w_1, w_2; w_2 is NaN for d = 2).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import mpl_toolkits.mplot3d  # noqa: F401  (registers the 3d projection)
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from normstudy.figures.drawing import figure_legend, file_stem, finish, style_handle
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.style import DIVERGED_COLOR, number_text
from normstudy.figures.tables import Tables

NAME = "ols"
COLUMNS = ["kappa", "d", "method", "lr", "step", "loss", "w_0", "w_1", "w_2"]
METHODS = {"gd": ("gradient descent on w", "-"), "bn": ("with BN reparameterisation", "--")}
FAR = 1e6


def runs(frame: pd.DataFrame):
    """(method, run rows sorted by step) for every method, in :data:`METHODS` order."""
    order = {m: i for i, m in enumerate(METHODS)}
    groups = sorted(frame.groupby("method"), key=lambda g: order.get(g[0], len(order)))
    return [(method, rows.sort_values("step")) for method, rows in groups]


def finite_part(rows: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, bool]:
    """The rows before the first non-finite or far-off value, and whether there was one
    (the run diverged)."""
    values = rows[columns].to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1) | (np.abs(values) > FAR).any(axis=1)
    if not bad.any():
        return rows, False
    return rows.iloc[: int(np.argmax(bad))], True


def kappa_colors(kappas: list[float]) -> dict[float, tuple]:
    """One colour per condition number, in every panel (residuals and trajectories), from
    a sequential map because κ is ordered; the method is the line style everywhere."""
    cmap = matplotlib.colormaps["viridis"]
    positions = np.linspace(0.0, 0.8, len(kappas)) if len(kappas) > 1 else [0.0]
    return {kappa: cmap(position) for kappa, position in zip(kappas, positions, strict=True)}


def draw_residuals(ax, frame: pd.DataFrame, colors: dict[float, tuple]) -> int:
    diverged = 0
    for kappa, color in colors.items():
        for method, rows in runs(frame[frame["kappa"] == kappa]):
            kept, failed = finite_part(rows, ["loss"])
            kept = kept[kept["loss"] > 0]
            ax.plot(
                kept["step"],
                kept["loss"],
                color=color,
                linestyle=METHODS[method][1] if method in METHODS else ":",
                label=f"κ = {number_text(kappa)}",
            )
            if failed and not kept.empty:
                diverged += 1
                ax.scatter(
                    kept["step"].iloc[-1],
                    kept["loss"].iloc[-1],
                    marker="x",
                    s=40,
                    color=DIVERGED_COLOR,
                    zorder=5,
                )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("residual loss")
    return diverged


def trajectory(rows: pd.DataFrame, weights: list[str]) -> tuple[np.ndarray, bool, bool]:
    """(steps x d effective weights before any non-finite value, diverged, loss grew)."""
    kept, failed = finite_part(rows, weights)
    loss = rows["loss"].to_numpy(dtype=float)
    grew = failed or not (np.isfinite(loss[-1]) and loss[-1] <= loss[0])
    return kept[weights].to_numpy(dtype=float), failed, grew


def view_box(paths: list[tuple[np.ndarray, bool, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """Limits that show every start and every run whose loss did not grow (padded by
    15%), so that a diverging run leaves the view instead of shrinking the others to a dot."""
    shown = [points for points, _, grew in paths if not grew]
    shown += [points[:1] for points, _, _ in paths]
    everything = np.concatenate(shown)
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.15 * np.maximum(high - low, 1e-3 * np.maximum(np.abs(high), 1.0))
    return low - pad, high + pad


def inside(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> int:
    """How many leading points lie inside the box."""
    outside = ((points < low) | (points > high)).any(axis=1)
    return int(np.argmax(outside)) if outside.any() else len(points)


def draw_trajectory(ax, frame: pd.DataFrame, d: int, kappa: float, color) -> int:
    """Each method's effective weights (line style) from start (○) to end (●) in the
    colour of ``kappa``; a run that leaves the view (it diverged or its loss grew) is cut
    at the edge and marked ×."""
    weights = [f"w_{i}" for i in range(d)]
    paths = [(method, *trajectory(rows, weights)) for method, rows in runs(frame)]
    paths = [path for path in paths if len(path[1])]
    if not paths:
        return 0
    low, high = view_box([path[1:] for path in paths])
    diverged, left = 0, []
    for method, points, failed, _ in paths:
        shown = points[: max(inside(points, low, high), 1)]
        linestyle = METHODS.get(method, ("", ":"))[1]
        ax.plot(*shown.T, color=color, linestyle=linestyle, linewidth=1.2)
        ax.scatter(*shown[:1].T, marker="o", facecolors="none", edgecolors=color)
        diverged += int(failed)
        if len(shown) < len(points) or failed:
            ax.scatter(*shown[-1:].T, marker="x", s=50, color=DIVERGED_COLOR, zorder=5)
            left.append(METHODS.get(method, (method,))[0])
        else:
            ax.scatter(*shown[-1:].T, marker="o", color=color)
    setters = [ax.set_xlim, ax.set_ylim] + ([ax.set_zlim] if d == 3 else [])
    for setter, a, b in zip(setters, low, high, strict=True):
        setter(a, b)
    ax.set_xlabel("w₀")
    ax.set_ylabel("w₁")
    if d == 3:
        ax.set_zlabel("w₂")
    title = f"trajectory, d = {d}, κ = {number_text(kappa)}"
    if left:
        title += "\nleaves the view (×): " + ", ".join(left)
    ax.set_title(title, loc="left")
    return diverged


def ols_figure(frame: pd.DataFrame, lr: float | None) -> tuple[Figure, int]:
    dims = sorted(int(d) for d in frame["d"].unique())
    kappas = sorted(float(k) for k in frame["kappa"].unique())
    colors = kappa_colors(kappas)
    ncols = 1 + len(kappas)
    fig = Figure(figsize=(3.3 * ncols, 3.0 * len(dims)))
    grid = fig.add_gridspec(len(dims), ncols)
    diverged = 0
    for row, d in enumerate(dims):
        in_d = frame[frame["d"] == d]
        ax = fig.add_subplot(grid[row, 0])
        diverged += draw_residuals(ax, in_d, colors)
        title = f"residual, d = {d}" + (f", lr = {number_text(lr)}" if lr is not None else "")
        ax.set_title(title, loc="left")
        for column, kappa in enumerate(kappas, start=1):
            projection = "3d" if d == 3 else None
            ax = fig.add_subplot(grid[row, column], projection=projection)
            diverged += draw_trajectory(ax, in_d[in_d["kappa"] == kappa], d, kappa, colors[kappa])
    handles = [style_handle(f"κ = {number_text(k)}", "-", c) for k, c in colors.items()]
    handles += [style_handle(label, dash) for label, dash in METHODS.values()]
    note = (
        f"trajectories: start ○, end ●, × where a run leaves the view; runs that diverged "
        f"(non-finite or beyond {FAR:g}): {diverged} (× at their last finite residual)"
    )
    figure_legend(fig, handles, note, where="bottom")
    return fig, diverged


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    """``ols.png`` (one file per learning rate, ``ols-lr=<lr>``, if there are several)."""
    if tables.ols is None:
        return skip(NAME, "no ols.parquet table in the tables directory")
    missing = [c for c in COLUMNS if c not in tables.ols.columns]
    if missing:
        return skip(NAME, f"ols.parquet lacks column(s) {', '.join(missing)}")
    if tables.ols.empty:
        return skip(NAME, "ols.parquet is empty")
    result = FigureResult(NAME)
    rates = sorted(tables.ols["lr"].dropna().unique())
    if len(rates) <= 1:
        fig, _ = ols_figure(tables.ols, rates[0] if rates else None)
        finish(result, fig, out_dir, NAME)
        return result
    for lr in rates:
        fig, _ = ols_figure(tables.ols[tables.ols["lr"] == lr], float(lr))
        finish(result, fig, out_dir, file_stem(NAME, f"lr={number_text(float(lr))}"))
    return result
