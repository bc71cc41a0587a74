"""Small pieces of wording shared by messages, tables and figures (no heavy imports: the
planner uses it)."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{count} {word}{'' if count == 1 else 's'}"
