"""The statistical comparisons (``comparisons.parquet``, and ``trends.parquet`` and
``tuning.parquet`` when given) as an HTML page for the report.

Readable views first (:mod:`normstudy.comparison_summary`: differences and slopes with
their intervals, equivalence verdicts with their margins, the tuned values each side was
compared at), then every column of each table, so that the page keeps working while the
statistics gain or rename columns; numbers are shown to four significant digits.

Usage: ``python -m normstudy.figures.comparison_table comparisons.parquet out.html
[--trends trends.parquet] [--tuning tuning.parquet]``
"""

from __future__ import annotations

import argparse
import html
import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from normstudy.comparison_summary import comparisons_view, trends_view, tuning_view
from normstudy.io import write_text_atomic

STYLE = (
    "table{border-collapse:collapse;font:12px sans-serif}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{background:#f0f0f0;position:sticky;top:0}"
)
EMPTY = "<p>No comparisons: no study's config asks for any, or no cell finished.</p>"


def cell_text(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>\n"
    )


def to_html(frame: pd.DataFrame, title: str) -> str:
    """A standalone HTML page with ``frame`` as one table (a note when it is empty)."""
    body = table_html(frame) if len(frame) else EMPTY
    return page(title, f"<p>{len(frame)} rows.</p>{body}")


def sections_html(
    comparisons: pd.DataFrame, trends: pd.DataFrame | None, tuning: pd.DataFrame | None
) -> str:
    """Summary views of the comparisons, trends and tuning, then every column of each."""
    parts = [f"<p>{len(comparisons)} rows.</p>"]
    if len(comparisons):
        parts += ["<h2>Summary</h2>", table_html(comparisons_view(comparisons))]
    if trends is not None and len(trends):
        parts += ["<h2>Trends</h2>", table_html(trends_view(trends))]
    if tuning is not None and len(tuning):
        parts += ["<h2>Tuning (chosen values marked)</h2>", table_html(tuning_view(tuning))]
    parts += ["<h2>All columns</h2>", table_html(comparisons) if len(comparisons) else EMPTY]
    if trends is not None and len(trends):
        parts += ["<h2>Trends: all columns</h2>", table_html(trends)]
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("comparisons")
    parser.add_argument("target")
    parser.add_argument("--trends")
    parser.add_argument("--tuning")
    args = parser.parse_args(argv)
    frame = pq.read_table(args.comparisons).to_pandas()
    trends = pq.read_table(args.trends).to_pandas() if args.trends else None
    tuning = pq.read_table(args.tuning).to_pandas() if args.tuning else None
    body = sections_html(frame, trends, tuning)
    write_text_atomic(Path(args.target), page("Statistical comparisons", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
