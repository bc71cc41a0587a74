"""Planning: tables in ``results/tables/`` that are no longer whole Parquet files.

Snakemake re-runs a job when an output is missing, not when one is damaged: a truncated
``cells.parquet`` would be taken as up to date and every figure and statistic reading it
would fail, and Snakemake would then delete their outputs. Found while planning, a damaged
table is set aside, so that the job that builds it runs again before anything reads it.

The check reads a few bytes per file (Parquet's ``PAR1`` magic at both ends and the footer
length, as in the format's specification), so it costs nothing at planning time and needs
no pyarrow; damage inside a file whose ends are intact is left to the reader's error.
"""

from __future__ import annotations

from pathlib import Path

MAGIC = b"PAR1"
"""The four bytes a Parquet file starts and ends with."""
ENDS = len(MAGIC) * 2 + 4
"""Both magics and the footer's length (a little-endian uint32 before the last magic)."""


def parquet_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole Parquet file, or None."""
    size = path.stat().st_size
    if size < ENDS:
        return f"{size} bytes, too short for a Parquet file"
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC))
        handle.seek(-8, 2)
        tail = handle.read(8)
    if head != MAGIC or tail[4:] != MAGIC:
        return "no Parquet magic bytes at its start or end (truncated or overwritten)"
    if int.from_bytes(tail[:4], "little") > size - ENDS:
        return "its footer is longer than the file (truncated)"
    return None


def damaged_tables(directory: Path) -> dict[Path, str]:
    """The Parquet tables in ``directory`` that are not whole, with the reason."""
    problems = {}
    for path in sorted(directory.glob("*.parquet")):
        problem = parquet_problem(path)
        if problem:
            problems[path] = problem
    return problems
