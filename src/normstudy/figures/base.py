"""What every figure shares: the tables, the registry, the style, statistics and writing.

Figures draw on :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state)
inside :data:`STYLE`, select their data by the grid axes of the studies, and are written
atomically as PNG and PDF. A figure whose data the tables lack is skipped with a reason.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from normstudy import stats
from normstudy.figures.catalog import CATALOG, TABLE_NAMES, figure_info
from normstudy.figures.intervals import (  # noqa: F401
    INTERVAL_TEXT,
    MAX_BANDS,
    draw_mean_band,
    fit_to_data,
    mean_ci,
    summarize,
    summarize_series,
)
from normstudy.figures.metrics import METRICS, MIN_SEEDS_FOR_INTERVAL  # noqa: F401

# The figure modules import the style's names from here too.
from normstudy.figures.style import (  # noqa: F401
    AXIS_LABELS,
    AXIS_SHORT,
    CHANCE_COLOR,
    DIVERGED_COLOR,
    FIXED_COLORS,
    FREEZE_COLORS,
    FREEZE_LABELS,
    FREEZE_ORDER,
    LEVEL_ORDERS,
    LINESTYLES,
    NORM_COLORS,
    NORM_DASHES,
    NORM_LABELS,
    NORM_ORDER,
    PALETTE,
    ROLE_COLORS,
    ROLE_LABELS,
    ROLE_ORDER,
    STYLE,
    TITLE_CHARS_PER_INCH,
    axis_label,
    condition_label,
    level_label,
    line_styles,
    number_text,
    ordered_levels,
    set_panel_title,
    set_panel_titles,
    shared_titles,
)
from normstudy.io import atomic_path, write_text_atomic
from normstudy.registry import Registry
from normstudy.schemas import CURVES_SCHEMA, PROBE_RECORDS_SCHEMA

log = logging.getLogger("normstudy.figures")

SEED_AXIS = "seed"

# ------------------------------------------------------------------------------- tables


def empty_frame(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})


CURVE_COLUMNS = ["cell_id", *(f.name for f in CURVES_SCHEMA)]
PROBE_COLUMNS = ["cell_id", *(f.name for f in PROBE_RECORDS_SCHEMA)]


def read_parquet_or(path: Path, columns: list[str] | None) -> pd.DataFrame | None:
    """The table at ``path``; an empty frame with ``columns`` (or None) if it is absent."""
    if path.exists():
        return pq.read_table(path).to_pandas()
    return None if columns is None else empty_frame(columns)


@dataclass
class Tables:
    """The study's tables, loaded once and shared by every figure.

    ``cells``, ``curves``, ``probes`` and ``comparisons`` as :mod:`normstudy.tables` and
    :mod:`normstudy.stats` write them; ``ols`` is the optional OLS experiment table
    (kappa, d, method, lr, step, loss, w_0, w_1, w_2). ``axes`` of a cell is a list.
    """

    cells: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=lambda: empty_frame(CURVE_COLUMNS))
    probes: pd.DataFrame = field(default_factory=lambda: empty_frame(PROBE_COLUMNS))
    comparisons: pd.DataFrame | None = None
    ols: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if "axes" in self.cells.columns:
            self.cells = self.cells.assign(axes=[list(a) for a in self.cells["axes"]])

    @classmethod
    def load(cls, tables_dir: str | os.PathLike[str], only: Iterable[str] | None = None) -> Tables:
        """Read ``cells.parquet`` (required) and the other tables found in ``tables_dir``
        (only those named in ``only``, e.g. ``("cells", "curves")``, if given)."""
        tables_dir = Path(tables_dir)
        cells_path = tables_dir / "cells.parquet"
        if not cells_path.exists():
            raise FileNotFoundError(f"no cells table {cells_path}; run the aggregation first")
        wanted = set(TABLE_NAMES if only is None else only)
        unknown = sorted(wanted - set(TABLE_NAMES))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; valid tables: {list(TABLE_NAMES)}")

        def read(table: str, columns: list[str] | None) -> pd.DataFrame | None:
            if table not in wanted:
                return None if columns is None else empty_frame(columns)
            return read_parquet_or(tables_dir / f"{table}.parquet", columns)

        return cls(
            cells=pq.read_table(cells_path).to_pandas(),
            curves=read("curves", CURVE_COLUMNS),
            probes=read("probes", PROBE_COLUMNS),
            comparisons=read("comparisons", None),
            ols=read("ols", None),
        )

    def study_axes(self) -> dict[str, list[str]]:
        """Each study's grid axes, in grid order."""
        if self.cells.empty:
            return {}
        first = self.cells.groupby("study", sort=True)["axes"].first()
        return {study: list(axes) for study, axes in first.items()}

    def study_cells(self, study: str) -> pd.DataFrame:
        return self.cells[self.cells["study"] == study].reset_index(drop=True)


# ----------------------------------------------------------------------------- registry


@dataclass
class FigureResult:
    """What rendering one figure did: the files written, or why it was skipped.

    ``texts`` holds every text drawn (titles, labels, legends, annotations), ``notes``
    the parts left out (e.g. a study without the needed records).
    """

    name: str
    written: list[Path] = field(default_factory=list)
    skipped: str | None = None
    texts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Render = Callable[[Tables, Path], FigureResult]


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its drawing function and the catalog's title, caption and
    module (the file that draws it, relative to the ``normstudy`` package)."""

    name: str
    render: Render
    title: str
    caption: str
    module: str


FIGURES: Registry[FigureSpec] = Registry("figure")


def register_figure(name: str) -> Callable[[Render], Render]:
    """Register ``render`` under ``name`` with the catalog's title, caption and module.

    The function must live in the module the catalog names, so that the workflow's
    per-figure input (that file) is the code that draws it.
    """
    info = figure_info(name)

    def decorator(render: Render) -> Render:
        module = render.__module__.removeprefix("normstudy.").replace(".", "/") + ".py"
        if module != info.module:
            raise ValueError(
                f"figure {name!r} is drawn in {module} but the catalog names {info.module}"
            )
        FIGURES.add(name, FigureSpec(name, render, info.title, info.caption, info.module))
        return render

    return decorator


def load_figures() -> Registry[FigureSpec]:
    """Import every figure module of the catalog (each registers itself); the registry."""
    for info in CATALOG.values():
        importlib.import_module("normstudy." + info.module.removesuffix(".py").replace("/", "."))
    return FIGURES


def owned_files(name: str, out_dir: Path) -> list[Path]:
    """Files a previous rendering of ``name`` may have left in ``out_dir``."""
    if not out_dir.is_dir():
        return []
    return [
        path
        for path in out_dir.iterdir()
        if path.is_file() and (path.name.startswith(f"{name}.") or path.name.startswith(f"{name}-"))
    ]


def render_figure(name: str, tables: Tables, out_dir: str | os.PathLike[str]) -> FigureResult:
    """Draw figure ``name`` into ``out_dir``: ``<name>.png`` and ``.pdf`` (variants as
    ``<name>-<variant>.png``/``.pdf``, tables as ``<name>.csv``/``.md``), or
    ``<name>.skipped.txt`` with the reason when the tables cannot support it."""
    spec = load_figures().get(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in owned_files(name, out_dir):
        stale.unlink()
    with matplotlib.rc_context(STYLE):
        result = spec.render(tables, out_dir)
    if result.skipped is not None:
        log.warning("figure %s skipped: %s", name, result.skipped)
        write_text_atomic(out_dir / f"{name}.skipped.txt", result.skipped + "\n")
    else:
        for note in result.notes:
            log.info("figure %s: %s", name, note)
    return result


def render_from_dir(
    name: str, tables_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> FigureResult:
    """:func:`render_figure` on the tables in ``tables_dir`` that the figure reads (for
    the workflow's CLI; :func:`normstudy.figures.catalog.figure_tables`)."""
    return render_figure(name, Tables.load(tables_dir, figure_info(name).tables), out_dir)


def skip(name: str, reason: str) -> FigureResult:
    return FigureResult(name=name, skipped=reason)


# --------------------------------------------------------------------------- statistics


def chance_accuracy(frame: pd.DataFrame) -> float | None:
    """1/classes when every cell of ``frame`` has the same number of classes."""
    if "num_classes" not in frame.columns:
        return None
    classes = frame["num_classes"].dropna().unique()
    return 1.0 / float(classes[0]) if len(classes) == 1 and classes[0] > 0 else None


def plural(count: int, word: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def seeds_text(counts: Iterable[int]) -> str:
    counts = sorted({int(c) for c in counts if c > 0})
    if not counts:
        return "n = 0"
    if len(counts) == 1:
        return f"n = {counts[0]} seed{'s' if counts[0] != 1 else ''} per point"
    return f"n = {counts[0]}–{counts[-1]} seeds per point"


# ---------------------------------------------------------------------------- selection


def studies_with(tables: Tables, required: Sequence[str], min_levels: int = 1) -> list[str]:
    """Studies whose grid axes include every ``required`` axis, each with at least
    ``min_levels`` values in the cells."""
    chosen = []
    for study, axes in tables.study_axes().items():
        if not set(required) <= set(axes):
            continue
        cells = tables.study_cells(study)
        if all(cells[axis].nunique(dropna=False) >= min_levels for axis in required):
            chosen.append(study)
    return chosen


def other_axes(axes: Sequence[str], *exclude: str) -> list[str]:
    """The grid axes without ``exclude`` and the seed axis."""
    return [axis for axis in axes if axis not in exclude and axis != SEED_AXIS]


def panel_title(
    study: str, frame: pd.DataFrame, study_axes: Sequence[str], shown: Sequence[str]
) -> str:
    """``study: dataset, model, axis=value, ...`` for one panel's cells, with the values
    of the ``shown`` axes (uniform within the panel); the model carries its depth unless
    depth is an axis."""
    parts = []
    for column in ("dataset", "model"):
        if column in frame.columns and column not in study_axes and frame[column].nunique() == 1:
            value = frame[column].iloc[0]
            depth = frame["depth"].iloc[0] if "depth" in frame.columns else None
            if column == "model" and "depth" not in study_axes and pd.notna(depth):
                value = f"{value}{int(depth)}"
            parts.append(str(value))
    parts += [level_label(a, frame[a].iloc[0]) for a in shown if frame[a].nunique() <= 1]
    return f"{study}: {', '.join(parts)}" if parts else study


@dataclass
class Line:
    """One plotted line: its label, colour, style, the cells it averages, and whether its
    interval is a band (few lines) or error bars (many lines, where bands would hide
    each other)."""

    label: str
    color: str
    linestyle: str
    rows: pd.DataFrame
    band: bool = True


@dataclass
class Panel:
    """One panel of a figure: a title and its lines."""

    title: str
    lines: list[Line]
    rows: pd.DataFrame


def varying_axes(frame: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The ``axes`` with more than one value among the cells of ``frame``."""
    return [axis for axis in axes if frame[axis].nunique(dropna=False) > 1]


def split_lines(
    frame: pd.DataFrame, axes: list[str], max_lines: int
) -> tuple[list[str], list[str]]:
    """(line axes, panel axes) from ``axes``: all lines in one panel if there are at most
    ``max_lines``, else one axis moves to the panels, the one that keeps the lines within
    ``max_lines`` with the fewest panels (or, failing that, leaves the fewest lines)."""
    if len(stats.grouped_by(frame, axes)) <= max_lines or len(axes) < 2:
        return axes, []

    def cost(axis: str) -> tuple[int, int]:
        lines = len(stats.grouped_by(frame, [a for a in axes if a != axis]))
        panels = frame[axis].nunique(dropna=False)
        return (0, panels) if lines <= max_lines else (1, lines)

    panel_axis = min(axes, key=cost)
    return [a for a in axes if a != panel_axis], [panel_axis]


def panels_for(
    tables: Tables,
    study: str,
    line_axes: Sequence[str],
    exclude: Sequence[str] = (),
    max_lines: int = 8,
    styled: bool = True,
) -> list[Panel]:
    """The panels of one study: one per combination of the varying axes other than
    ``line_axes``, ``exclude`` and seed; in each, one line per combination of the
    ``line_axes`` that vary in the study (of every other varying axis if none does;
    :func:`split_lines` moves one to the panels when there are too many lines). Axes
    with a single value go into the titles. ``styled``: see :func:`line_styles`."""
    axes = tables.study_axes()[study]
    frame = tables.study_cells(study)
    varying = varying_axes(frame, other_axes(axes, *exclude))
    lines_by = [a for a in line_axes if a in varying]
    panel_by = [a for a in varying if a not in lines_by]
    if not lines_by:
        lines_by, panel_by = split_lines(frame, panel_by, max_lines)
    shown = [a for a in other_axes(axes, *exclude) if a not in lines_by]
    line_keys = sorted_keys(lines_by, [key for key, _ in stats.grouped_by(frame, lines_by)])
    styles = line_styles(lines_by, line_keys, styled)
    panels = []
    for _, rows in sorted_groups(frame, panel_by):
        lines = [
            Line(
                label=condition_label(lines_by, line_key),
                color=styles[line_key][0],
                linestyle=styles[line_key][1],
                rows=line_rows,
                band=len(line_keys) <= MAX_BANDS,
            )
            for line_key, line_rows in sorted_groups(rows, lines_by)
        ]
        panels.append(Panel(panel_title(study, rows, axes, shown), lines, rows))
    return panels


def sorted_keys(axes: Sequence[str], keys: Iterable[tuple]) -> list[tuple]:
    """Keys of ``axes`` combinations ordered level by level (:func:`ordered_levels`)."""
    keys = list(keys)
    if not axes:
        return keys
    orders = [ordered_levels(axis, [k[i] for k in keys]) for i, axis in enumerate(axes)]
    return sorted(
        keys,
        key=lambda k: [orders[i].index(stats.python_value(v)) for i, v in enumerate(k)],
    )


def sorted_groups(frame: pd.DataFrame, axes: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    groups = dict(stats.grouped_by(frame, list(axes)))
    return [(key, groups[key]) for key in sorted_keys(axes, groups)]


# ------------------------------------------------------------------------------ drawing


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


# ------------------------------------------------------------------------------- probes

MODEL = "model"


def probe_labels(probes: pd.DataFrame, key: str) -> list[str]:
    """The probe labels (``probe`` column) whose records include ``key``: a probe can be
    scheduled twice under different labels (e.g. ``hessian`` and ``hessian_eval``)."""
    return sorted(probes.loc[probes["key"] == key, "probe"].unique())


def steps_per_epoch(curves: pd.DataFrame) -> pd.Series:
    """Optimizer steps per epoch of each cell (cell_id index), from its first curve row."""
    first = curves[curves["epoch"] > 0].sort_values("epoch").groupby("cell_id").first()
    return (first["step"] / first["epoch"]).rename("steps_per_epoch")


def timed_records(tables: Tables, labels: Sequence[str]) -> pd.DataFrame:
    """The records of the probe ``labels`` with ``time`` in (fractional) epochs, from the
    step and the cell's steps per epoch (the epoch if the cell has no curves), one record
    per (cell, probe, layer, key, step) (a probe due at the last epoch and at the end
    measures the same state twice), failures and non-finite values left out."""
    records = tables.probes[tables.probes["probe"].isin(labels)]
    records = records[(records["key"] != "failed") & np.isfinite(records["value"].astype(float))]
    records = records.drop_duplicates(
        ["cell_id", "probe", "layer", "key", "step"], keep="last"
    ).copy()
    per_epoch = records["cell_id"].map(steps_per_epoch(tables.curves))
    records["time"] = (records["step"] / per_epoch).where(per_epoch > 0, records["epoch"])
    return records


def last_records(records: pd.DataFrame) -> pd.DataFrame:
    """Each cell's records at its last probed step."""
    last = records.groupby("cell_id")["step"].transform("max")
    return records[records["step"] == last]


def diverged_text(rows: pd.DataFrame) -> str:
    """``k of n cells diverged`` for the cells in ``rows`` (empty when none did)."""
    failed = int((rows["status"] == "diverged").sum())
    return f" ({failed} of {len(rows)} cells diverged)" if failed else ""


def count_diverged(rows: pd.DataFrame) -> int:
    return int((rows["status"] == "diverged").sum())


def conditions(tables: Tables, study: str) -> list[tuple[str, pd.DataFrame]]:
    """(title, cells) for every combination of the study's axes other than seed."""
    axes = tables.study_axes()[study]
    frame = tables.study_cells(study)
    by = other_axes(axes)
    return [(panel_title(study, rows, axes, by), rows) for _, rows in sorted_groups(frame, by)]


# ------------------------------------------------------------------ metric against an axis


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
            failed = line.rows[stats.failed_cells(line.rows, metric)]
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
