"""Means over seeds and what is drawn around them: a Student-t interval with enough seeds,
each seed's value and the seeds' range with fewer (:data:`MIN_SEEDS_FOR_INTERVAL`), never
beyond the metric's possible range, and value axes fitted to the data, not the intervals."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from scipy import stats as sps

from normstudy import stats_common
from normstudy.figures.metrics import MIN_SEEDS_FOR_INTERVAL, Metric

CONFIDENCE = 0.95
MAX_BANDS = 5
INTERVAL_TEXT = (
    f"with ≥ {MIN_SEEDS_FOR_INTERVAL} seeds: band = 95% Student-t interval (error bars "
    f"when a panel has more than {MAX_BANDS} lines); with fewer: dots = the seeds, "
    "bar = their range"
)
SEED_GID = "seed-values"
RANGE_GID = "seed-range"
INTERVAL_GID = "interval"
SUMMARY_COLUMNS = ["mean", "ci_low", "ci_high", "n", "values"]


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE):
    """``(mean, low, high, n)`` of the finite ``values``: the two-sided Student-t interval
    mean ± t_{(1+c)/2, n-1} s / sqrt(n) (``scipy.stats.t.interval``); NaN bounds for
    fewer than two values, a zero-width interval when they are all equal."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    sem = float(sps.sem(x))
    if sem == 0:
        return mean, mean, mean, n
    low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


def counted_values(frame: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    """The value each cell contributes (a diverged cell: chance accuracy, as the
    comparisons' default policy) and whether it diverged."""
    policy = "chance" if metric.endswith("_acc") else "worst"
    return stats_common.metric_values(frame, metric, policy), stats_common.failed_cells(
        frame, metric
    )


def finite(values: Iterable[float]) -> tuple[float, ...]:
    x = np.asarray(list(values), dtype=float)
    return tuple(float(v) for v in x[np.isfinite(x)])


def summarize(frame: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """Per combination of ``by``: mean, 95% t-interval, n, the seeds' values and the
    diverged count of ``metric`` over the rows (seeds), diverged cells counted at chance."""
    values, failed = counted_values(frame, metric)
    rows = []
    for key, group in stats_common.grouped_by(frame, list(by)):
        mean, low, high, n = mean_ci(values[group.index])
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n": n,
                "values": finite(values[group.index]),
                "n_diverged": int(failed[group.index].sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS, "n_diverged"])


def summarize_series(
    frame: pd.DataFrame, by: Sequence[str], value: str, log: bool = False
) -> pd.DataFrame:
    """Per combination of ``by``: mean, 95% t-interval and the finite values of the
    ``value`` column.

    With ``log``, of the positive values on a log scale, i.e. the geometric mean and a
    multiplicative interval, which stays positive on the log axes where such values
    (losses, gradient magnitudes, eigenvalues) are drawn.
    """
    rows = []
    for key, group in stats_common.grouped_by(frame, list(by)):
        values = np.asarray(finite(group[value]), dtype=float)
        if log:
            values = values[values > 0]
        mean, low, high, n = mean_ci(np.log(values) if log else values)
        if log:
            mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
        row = {"mean": mean, "ci_low": low, "ci_high": high, "n": n, "values": tuple(values)}
        rows.append({**dict(zip(by, key, strict=True)), **row})
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def shows_interval(summary: pd.DataFrame) -> bool:
    """Whether every point of ``summary`` rests on enough seeds for an interval."""
    counts = summary["n"].to_numpy(dtype=float)
    return bool(counts.size) and bool((counts >= MIN_SEEDS_FOR_INTERVAL).all())


def draw_mean_band(
    ax,
    x,
    summary: pd.DataFrame,
    line,
    *,
    scale: float = 1.0,
    metric: Metric | None = None,
    **kwargs,
):
    """The mean line with markers, and around it either the 95% interval (a band, or
    error bars when ``line.band`` is false) clipped to ``metric``'s range, when every
    point has at least :data:`MIN_SEEDS_FOR_INTERVAL` seeds, or else each seed's value
    as a dot and the seeds' range as a thin bar. Returns the mean line (for legends)."""
    x = np.asarray(x, dtype=float)
    mean = summary["mean"].to_numpy(dtype=float) * scale
    (handle,) = ax.plot(
        x,
        mean,
        color=line.color,
        linestyle=kwargs.pop("linestyle", line.linestyle),
        marker=kwargs.pop("marker", "o"),
        label=line.label,
        **kwargs,
    )
    if not shows_interval(summary):
        draw_seeds(ax, x, summary["values"], line.color, scale)
        return handle
    low = summary["ci_low"].to_numpy(dtype=float) * scale
    high = summary["ci_high"].to_numpy(dtype=float) * scale
    if metric is not None:
        low, high = np.clip(low, *metric.bounds), np.clip(high, *metric.bounds)
    if not np.isfinite(low).any():
        return handle
    if line.band:
        ax.fill_between(x, low, high, color=line.color, alpha=0.15, linewidth=0, gid=INTERVAL_GID)
    else:
        ax.vlines(x, low, high, color=line.color, alpha=0.6, linewidth=0.9, gid=INTERVAL_GID)
    return handle


def draw_seeds(ax, x: np.ndarray, values: Iterable[Sequence[float]], color: str, scale: float):
    """Each seed's value as a dot and, where there are several, their range as a bar."""
    xs, ys, lows, highs, at = [], [], [], [], []
    for position, seeds in zip(x, values, strict=True):
        seeds = [scale * v for v in seeds]
        xs += [position] * len(seeds)
        ys += seeds
        if len(seeds) > 1:
            at.append(position)
            lows.append(min(seeds))
            highs.append(max(seeds))
    if at:
        ax.vlines(at, lows, highs, color=color, alpha=0.45, linewidth=0.8, gid=RANGE_GID)
    if xs:
        ax.plot(
            xs, ys, linestyle="none", marker=".", markersize=3, color=color, alpha=0.6, gid=SEED_GID
        )


def data_values(ax) -> np.ndarray:
    """The y values of what the axes show as data: lines, dots and markers (mean lines,
    seed dots, diverged crosses, reference lines), not intervals or ranges."""
    found = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    found += [
        np.asarray(points.get_offsets(), dtype=float).reshape(-1, 2)[:, 1]
        for points in ax.collections
        if isinstance(points, PathCollection)
    ]
    values = np.concatenate(found) if found else np.zeros(0)
    return values[np.isfinite(values)]


def fit_to_data(axes, metric: Metric | None = None, margin: float = 0.06) -> None:
    """Set the value axis of ``axes`` (one or several sharing a scale) to their data
    (:func:`data_values`) with a margin, so that an interval wider than the data cannot
    stretch it; never past the metric's range by more than the margin, and only
    positive values on a log axis."""
    axes = list(np.ravel(axes))
    values = np.concatenate([data_values(ax) for ax in axes]) if axes else np.zeros(0)
    log = bool(axes) and axes[0].get_yscale() == "log"
    if log:
        values = values[values > 0]
    if not values.size:
        return
    low, high = float(values.min()), float(values.max())
    if log:
        factor = (high / low) ** margin if high > low else 2.0
        low, high = low / factor, high * factor
    else:
        span = high - low if high > low else max(abs(high), 1.0) * 0.1
        low, high = low - margin * span, high + margin * span
        if metric is not None:
            reach = metric.high - metric.low
            pad = margin * (reach if math.isfinite(reach) else span)
            low, high = max(low, metric.low - pad), min(high, metric.high + pad)
    for ax in axes:
        ax.set_ylim(low, high)


def drawn_intervals(ax) -> list[tuple[float, float]]:
    """(low, high) of every interval or range drawn on ``ax`` (for checks and tests)."""
    found = []
    for artist in ax.collections:
        if artist.get_gid() not in (INTERVAL_GID, RANGE_GID):
            continue
        for path in artist.get_paths():
            ys = path.vertices[:, 1]
            found.append((float(ys.min()), float(ys.max())))
    return found


def is_seed_dots(artist) -> bool:
    return isinstance(artist, Line2D) and artist.get_gid() == SEED_GID
