"""Readable views of the comparison tables for the report and ``comparisons.md``.

The Parquet files are the exact record; these views put each result in one cell: a
difference or slope with its interval, an equivalence verdict with its margin (TOST,
:mod:`normstudy.equivalence`), the tuned values each side was compared at
(:mod:`normstudy.tuning`), the trend tests of :mod:`normstudy.trends`.
"""

from __future__ import annotations

import math

import pandas as pd


def number(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def with_interval(value: float, low: float, high: float) -> str:
    """``0.0123 [0.004, 0.021]``, or the value alone without an interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if math.isnan(low) or math.isnan(high):
        return number(value)
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def comparisons_view(table: pd.DataFrame) -> pd.DataFrame:
    """One line per comparison: sides, condition, diff with its 95% interval, Holm p, and
    the equivalence and tuning columns when the comparison declares them."""
    view = pd.DataFrame(
        {
            "study": table["study"],
            "comparison": table["candidate"] + " vs " + table["reference"],
            "condition": table["condition"],
            "metric": table["metric"],
            "seeds": table["n_cand"].astype(str) + "/" + table["n_ref"].astype(str),
            "diff [95% CI]": [
                with_interval(*v)
                for v in zip(table["diff"], table["ci_low"], table["ci_high"], strict=False)
            ],
            "p_holm": table["p_holm"].map(number),
        }
    )
    if "equivalence" in table and table["equivalence"].notna().any():
        view["equivalence (margin; TOST p; 90% CI)"] = [
            ""
            if verdict is None or (isinstance(verdict, float) and math.isnan(verdict))
            else f"{verdict} (±{margin:.4g}; p={number(p)}; {with_interval(d, lo, hi)})"
            for verdict, margin, p, d, lo, hi in zip(
                table["equivalence"],
                table["equivalence_margin"],
                table["tost_p"],
                table["diff"],
                table["eq_low"],
                table["eq_high"],
                strict=False,
            )
        ]
    if "tuned_axes" in table and table["tuned_axes"].notna().any():
        view["tuned at (cand / ref)"] = [
            "" if axes is None else f"{cand} / {ref}"
            for axes, cand, ref in zip(
                table["tuned_axes"],
                table["candidate_tuned"],
                table["reference_tuned"],
                strict=False,
            )
        ]
    return view


def trends_view(trends: pd.DataFrame) -> pd.DataFrame:
    """One line per trend test: slope with its interval, Holm p-values, the rank test."""
    return pd.DataFrame(
        {
            "study": trends["study"],
            "trend": trends["metric"] + " along " + trends["axis"] + " (" + trends["scale"] + ")",
            "condition": trends["condition"],
            "cells": trends["n"].astype(str),
            "slope [95% CI]": [
                with_interval(*v)
                for v in zip(
                    trends["slope"], trends["slope_low"], trends["slope_high"], strict=False
                )
            ],
            "p_holm (slope = 0)": trends["p_holm"].map(number),
            "p_holm (improves)": trends["p_holm_improves"].map(number),
            "rank test p_holm": trends["test_rank"] + " " + trends["p_holm_rank"].map(number),
        }
    )


def tuning_view(tuning: pd.DataFrame) -> pd.DataFrame:
    """Every tuned value's mean tune_metric per level, the chosen one marked."""
    return pd.DataFrame(
        {
            "study": tuning["study"],
            "level": tuning["factor"] + "=" + tuning["level"],
            "condition": tuning["condition"],
            "tuned values": tuning["tuned_values"],
            "tune_metric": tuning["tune_metric"],
            "mean": tuning["mean_tune"].map(number),
            "seeds": tuning["n"].astype(str),
            "chosen": tuning["chosen"].map(lambda chosen: "✓" if chosen else ""),
        }
    )


def markdown_table(frame: pd.DataFrame) -> str:
    if not len(frame):
        return "(none)\n"
    cells = [[str(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def summary_markdown(table: pd.DataFrame, trends: pd.DataFrame, tuning: pd.DataFrame) -> str:
    """The comparisons, trends and tuning tables as Markdown sections."""
    sections = [
        ("Comparisons", comparisons_view(table) if len(table) else table),
        ("Trends", trends_view(trends) if len(trends) else trends),
        ("Tuning (the chosen value of each level marked)", tuning_view(tuning)),
    ]
    return "\n".join(f"## {title}\n\n{markdown_table(frame)}" for title, frame in sections)
