"""Short texts the figures write about their data: chance level, seed counts, diverged cells."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def chance_accuracy(frame: pd.DataFrame) -> float | None:
    """1/classes when every cell of ``frame`` has the same number of classes."""
    if "num_classes" not in frame.columns:
        return None
    classes = frame["num_classes"].dropna().unique()
    return 1.0 / float(classes[0]) if len(classes) == 1 and classes[0] > 0 else None


def seeds_text(counts: Iterable[int]) -> str:
    counts = sorted({int(c) for c in counts if c > 0})
    if not counts:
        return "n = 0"
    if len(counts) == 1:
        return f"n = {counts[0]} seed{'s' if counts[0] != 1 else ''} per point"
    return f"n = {counts[0]}–{counts[-1]} seeds per point"


def diverged_text(rows: pd.DataFrame) -> str:
    """``k of n cells diverged`` for the cells in ``rows`` (empty when none did)."""
    failed = int((rows["status"] == "diverged").sum())
    return f" ({failed} of {len(rows)} cells diverged)" if failed else ""


def count_diverged(rows: pd.DataFrame) -> int:
    return int((rows["status"] == "diverged").sum())
