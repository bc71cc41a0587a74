"""A study's conditional parts: ``exclude:`` (grid points to drop) and ``when:`` (settings
that hold only at some grid points). Imports no torch.

A full factorial grid cannot say "the random-features baseline has no normalizer-free
arm" or "BN-only trains longer" (Torri 2022, §4.1: BN-only "requires a lot more training
epochs"). Two keys of a study say it without splitting the study in two, so its cells keep
one set of comparisons::

    exclude:
      - {norm: none, freeze: norm}          # drop every point with both values
    when:
      - match: {freeze: norm}               # at every point with these values ...
        set: {epochs: 400}                  # ... these settings hold (after `set:`)

A match names grid axes and one level of each (or a list of levels, any of which
matches). Levels are checked against the axis's levels at both scales, so one entry can
serve the paper and the demo grid; at a scale where a level is absent it matches
nothing there. ``when`` entries apply in order after ``set:`` and may not set a grid
axis (that would hide the axis's own value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normstudy.config import canonical_json

WHEN_KEYS = ("match", "set")


class ConditionError(ValueError):
    """An ``exclude`` or ``when`` entry that cannot apply; the message says why."""


@dataclass(frozen=True)
class Match:
    """Axis -> the canonical JSON of the levels that match."""

    levels: dict[str, frozenset[str]]

    def matches(self, point: Mapping[str, Any]) -> bool:
        return all(canonical_json(point[axis]) in ok for axis, ok in self.levels.items())


@dataclass(frozen=True)
class When:
    match: Match
    settings: dict[str, Any]


def parse_match(where: str, entry: object, axis_levels: Mapping[str, Sequence[Any]]) -> Match:
    """A mapping of axis -> level (or list of levels), checked against ``axis_levels``."""
    if not isinstance(entry, Mapping) or not entry:
        raise ConditionError(f"{where} must be a non-empty mapping of grid axis -> level")
    levels: dict[str, frozenset[str]] = {}
    for axis, wanted in entry.items():
        if axis not in axis_levels:
            raise ConditionError(
                f"{where}: {axis!r} is not a grid axis; axes: {', '.join(axis_levels)}"
            )
        values = wanted if isinstance(wanted, list) else [wanted]
        valid = {canonical_json(level) for level in axis_levels[axis]}
        for value in values:
            if canonical_json(value) not in valid:
                listed = ", ".join(canonical_json(level) for level in axis_levels[axis])
                raise ConditionError(
                    f"{where}: {value!r} is not a level of {axis!r}; levels: {listed}"
                )
        levels[axis] = frozenset(canonical_json(value) for value in values)
    return Match(levels)


def parse_exclude(entries: object, axis_levels: Mapping[str, Sequence[Any]]) -> list[Match]:
    """The ``exclude:`` list of a study."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConditionError(f"exclude must be a list of grid points; got {entries!r}")
    return [parse_match(f"exclude[{i}]", entry, axis_levels) for i, entry in enumerate(entries)]


def parse_when(
    entries: object, axis_levels: Mapping[str, Sequence[Any]], axes: Sequence[str]
) -> list[When]:
    """The ``when:`` list of a study (``axes``: the grid axes at this scale, never set)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConditionError(f"when must be a list of {{match: ..., set: ...}}; got {entries!r}")
    parsed = []
    for i, entry in enumerate(entries):
        where = f"when[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != set(WHEN_KEYS):
            raise ConditionError(f"{where} must have exactly the keys {', '.join(WHEN_KEYS)}")
        settings = entry["set"]
        if not isinstance(settings, Mapping) or not settings:
            raise ConditionError(f"{where}: set must be a non-empty mapping of key -> value")
        clash = sorted(set(settings) & set(axes))
        if clash:
            raise ConditionError(
                f"{where}: sets the grid axis {', '.join(clash)}; a grid axis takes its "
                "value from the grid (exclude points instead)"
            )
        parsed.append(When(parse_match(f"{where}.match", entry["match"], axis_levels), settings))
    return parsed


def excluded(point: Mapping[str, Any], exclude: Sequence[Match]) -> bool:
    return any(match.matches(point) for match in exclude)


def settings_at(point: Mapping[str, Any], when: Sequence[When]) -> list[tuple[str, Any]]:
    """The ``when`` settings that hold at ``point``, in order (later entries win)."""
    return [
        (key, value)
        for entry in when
        if entry.match.matches(point)
        for key, value in entry.settings.items()
    ]
