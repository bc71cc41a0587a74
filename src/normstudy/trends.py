"""Trend tests: does a metric improve along an ordered numeric axis?

Frankle, Schwab & Morcos (2020), "Training BatchNorm and only BatchNorm", §4 and figure
2: BN-only accuracy grows with depth. For an entry ``{trend: depth, metric: ..., scale:
log}`` and every combination of the study's other axes except the seed, an ordinary
least-squares line of the metric on log2(axis) (or the axis) over all cells, seeds as
replicates (``scipy.stats.linregress``), gives the slope, its Student t interval with
n - 2 degrees of freedom and the two-sided p-value of slope = 0, plus the one-sided
p-value toward improvement (higher accuracy, lower loss). A rank check that does not
assume a line: Page's L test (Page 1963, JASA 58:216; ``scipy.stats.page_trend_test``)
with seeds as blocks when every seed has every level, else Kendall's tau across cells;
both one-sided toward improvement. Diverged cells enter by the comparison's policy, as in
:mod:`normstudy.comparisons`; Holm adjusts within each family study/trend=axis/metric.

Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats as sps

from normstudy.comparison_specs import TrendSpec, metric_direction, parse_trends  # noqa: F401
from normstudy.stats_common import (
    checked_cells,
    condition_json,
    failed_cells,
    frame_arrow,
    grouped_by,
    metric_values,
    schema_of,
    statistic_and_p,
)

TREND_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("study", pa.string(), False, "study name"),
    ("family", pa.string(), False, "Holm family: study/trend=axis/metric"),
    ("axis", pa.string(), False, "the ordered numeric axis"),
    ("scale", pa.string(), False, "log (x = log2 of the axis) or linear (x = the axis)"),
    ("condition", pa.string(), False, "values of the other axes (not axis, not seed), JSON"),
    ("metric", pa.string(), False, "metric column of cells"),
    ("direction", pa.string(), False, "which values of the metric are better: higher, lower"),
    ("diverged_policy", pa.string(), False, "how diverged cells entered"),
    ("n", pa.int32(), False, "cells in the fit"),
    ("n_levels", pa.int32(), False, "distinct axis values in the fit"),
    ("n_diverged", pa.int32(), False, "diverged cells in the condition"),
    ("slope", pa.float64(), True, "OLS slope of the metric per unit of x (per doubling on log)"),
    ("slope_low", pa.float64(), True, "lower end of the t interval of the slope (df n - 2)"),
    ("slope_high", pa.float64(), True, "upper end of that interval"),
    ("confidence", pa.float64(), False, "confidence level of the interval"),
    ("p_value", pa.float64(), True, "two-sided p-value of slope = 0 (scipy linregress)"),
    ("p_improves", pa.float64(), True, "one-sided p-value toward improvement along the axis"),
    ("test_rank", pa.string(), False, "page (seeds as blocks) or kendall (across cells)"),
    ("statistic_rank", pa.float64(), True, "Page's L or Kendall's tau (sign: improvement > 0)"),
    ("p_rank", pa.float64(), True, "one-sided p-value of the rank test toward improvement"),
    ("p_holm", pa.float64(), True, "Holm-adjusted p_value within the family"),
    ("p_holm_improves", pa.float64(), True, "Holm-adjusted p_improves within the family"),
    ("p_holm_rank", pa.float64(), True, "Holm-adjusted p_rank within the family"),
    ("note", pa.string(), False, "why numbers are missing and how diverged cells entered"),
]
TREND_COLUMNS = [name for name, *_ in TREND_FIELDS]
TRENDS_SCHEMA = schema_of(TREND_FIELDS, "one row per trend test and condition (normstudy.trends)")


def slope_numbers(x: np.ndarray, y: np.ndarray, direction: str, confidence: float) -> dict:
    """OLS slope of y on x with its t interval, two-sided and improvement-sided p."""
    nan = {"slope": math.nan, "slope_low": math.nan, "slope_high": math.nan}
    nan.update(p_value=math.nan, p_improves=math.nan)
    if x.size < 3 or np.ptp(x) == 0:
        return nan
    fit = sps.linregress(x, y)
    if fit.stderr == 0 or not math.isfinite(fit.stderr):
        return {**nan, "slope": float(fit.slope)}
    df = x.size - 2
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * fit.stderr
    t = fit.slope / fit.stderr * (1 if direction == "higher" else -1)
    return {
        "slope": float(fit.slope),
        "slope_low": float(fit.slope - half),
        "slope_high": float(fit.slope + half),
        "p_value": float(fit.pvalue),
        "p_improves": float(sps.t.sf(t, df)),
    }


def rank_numbers(x: np.ndarray, y: np.ndarray, seeds: np.ndarray | None) -> dict:
    """Page's L (seeds as blocks, every seed at every level, three or more levels) or
    Kendall's tau, one-sided toward larger ``y`` (the caller signs y as improvement)."""
    levels = np.unique(x)
    if seeds is not None and levels.size >= 3:
        table = pd.DataFrame({"s": seeds, "x": x, "y": y}).pivot_table("y", "s", "x")
        if table.shape[0] >= 2 and not table.isna().any().any():
            statistic, p = statistic_and_p(sps.page_trend_test, table.to_numpy())
            return {"test_rank": "page", "statistic_rank": statistic, "p_rank": p}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"test_rank": "kendall", "statistic_rank": math.nan, "p_rank": math.nan}
    statistic, p = statistic_and_p(sps.kendalltau, x, y, alternative="greater")
    return {"test_rank": "kendall", "statistic_rank": statistic, "p_rank": p}


def trend_row(rows: pd.DataFrame, values: pd.Series, spec: TrendSpec, seeds, confidence):
    """The numbers of one condition (identity columns are the caller's)."""
    used = values[rows.index].notna().to_numpy()
    axis = rows[spec.trend].to_numpy(dtype=float)[used]
    x = np.log2(axis) if spec.scale == "log" else axis
    y = values[rows.index].to_numpy(dtype=float)[used]
    direction = metric_direction(spec.metric)
    sign = 1.0 if direction == "higher" else -1.0
    seed_values = rows[seeds].to_numpy()[used] if seeds else None
    row = {"n": int(x.size), "n_levels": int(np.unique(x).size), "direction": direction}
    row.update(slope_numbers(x, y, direction, confidence))
    row.update(rank_numbers(x, sign * y, seed_values))
    return row


def trend(
    cells: pd.DataFrame,
    spec: TrendSpec,
    axes: Sequence[str],
    *,
    study: str,
    seed_axis: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per combination of the axes other than ``spec.trend`` and the seed."""
    axes = list(axes)
    frame = checked_cells(cells, study, axes, [spec.metric])
    values = metric_values(frame, spec.metric, spec.diverged)
    failed = failed_cells(frame, spec.metric)
    seeds = seed_axis if seed_axis in axes else None
    condition_axes = [a for a in axes if a not in (spec.trend, seed_axis)]
    out = []
    for key, rows in grouped_by(frame, condition_axes):
        row = trend_row(rows, values, spec, seeds, confidence)
        n_diverged = int(failed[rows.index].sum())
        notes = [] if row["n"] >= 3 and row["n_levels"] >= 2 else ["fewer than 3 cells or 2 levels"]
        if n_diverged:
            notes.append(f"{n_diverged} diverged cells entered by policy {spec.diverged!r}")
        out.append(
            {
                "study": study,
                "family": f"{study}/trend={spec.trend}/{spec.metric}",
                "axis": spec.trend,
                "scale": spec.scale,
                "condition": condition_json(condition_axes, key),
                "metric": spec.metric,
                "diverged_policy": spec.diverged,
                "n_diverged": n_diverged,
                "confidence": confidence,
                **row,
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(out).reindex(columns=TREND_COLUMNS)


def trends_table(
    cells: pd.DataFrame,
    studies: Mapping[str, tuple[Sequence[str], Sequence[TrendSpec]]],
    *,
    seed_axis: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every declared trend of every study (study -> (axes, trend specs)), Holm-adjusted
    within each family across its conditions."""
    from normstudy.multiplicity import holm_within_families

    parts = [
        trend(cells, spec, axes, study=study, seed_axis=seed_axis, confidence=confidence)
        for study, (axes, specs) in studies.items()
        for spec in specs
    ]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TREND_COLUMNS})
    pairs = [("p_value", "p_holm"), ("p_improves", "p_holm_improves"), ("p_rank", "p_holm_rank")]
    return holm_within_families(pd.concat(parts, ignore_index=True), pairs)


def trends_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` (from :func:`trends_table`) as a table with :data:`TRENDS_SCHEMA`."""
    return frame_arrow(df, TRENDS_SCHEMA)
