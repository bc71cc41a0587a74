"""The statistical comparisons (``comparisons.parquet``) as an HTML table for the report.

Renders whatever columns the table has, so that it keeps working while the statistics
gain or rename columns; numbers are shown to four significant digits.

Usage: ``python -m normstudy.figures.comparison_table comparisons.parquet out.html``
"""

from __future__ import annotations

import html
import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from normstudy.io import write_text_atomic

STYLE = (
    "table{border-collapse:collapse;font:12px sans-serif}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{background:#f0f0f0;position:sticky;top:0}"
)


def cell_text(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def to_html(frame: pd.DataFrame, title: str) -> str:
    """A standalone HTML page with ``frame`` as one table (a note when it is empty)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    body = (
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        if len(frame)
        else "<p>No comparisons: no study's config asks for any, or no cell finished.</p>"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(frame)} rows.</p>{body}</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    source, target = (argv if argv is not None else sys.argv[1:])[:2]
    frame = pq.read_table(source).to_pandas()
    write_text_atomic(Path(target), to_html(frame, "Statistical comparisons"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
