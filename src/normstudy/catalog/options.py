"""Options of a catalog entry: each declared once, with its default, type and check.

The one options mechanism of every family: the planner reports what is wrong with a
study's options (:func:`option_problems`) while Snakemake parses the workflow, and the
torch builders take the defaults merged with the given options, checked and converted
(:func:`resolve_options`), so a bad value fails before any job starts and no builder
repeats a default. Checks that need a built layer's shape (Group Norm's ``groups`` must
divide the channel count) run where that shape is known.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], Any]
"""A value check: returns the value to use, or raises ValueError saying what it must be."""


@dataclass(frozen=True)
class Option:
    """One option: its ``default``, its ``type`` (``int``, ``float``, ``bool``, ``str``,
    ``numbers`` (a list of numbers), ``any``; ``| None`` admits null), an optional
    value ``check`` run after the type check, and a line of ``help``."""

    default: Any
    type: str
    check: Check | None = None
    help: str = ""


_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "numbers": "a list of numbers",
    "None": "null",
}


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fits(value: object, part: str) -> bool:
    if part == "None":
        return value is None
    if part == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if part == "float":
        return _is_real(value)
    if part == "bool":
        return isinstance(value, bool)
    if part == "str":
        return isinstance(value, str)
    if part == "numbers":
        return isinstance(value, (list, tuple)) and all(_is_real(v) for v in value)
    return part == "any"


def _converted(value: object, part: str) -> object:
    if part == "float":
        return float(value)  # type: ignore[arg-type]
    if part == "int":
        return int(value)  # type: ignore[call-overload]
    if part == "numbers":
        return tuple(float(v) for v in value)  # type: ignore[union-attr]
    return value


def checked_value(option: Option, value: object) -> object:
    """``value`` converted to ``option``'s type and passed through its check; ValueError
    (the reason, e.g. ``must be an integer``) if it does not fit."""
    parts = [part.strip() for part in option.type.split("|")]
    part = next((p for p in parts if _fits(value, p)), None)
    if part is None:
        wanted = " or ".join(_WORDS.get(p, f"a {p}") for p in parts)
        raise ValueError(f"must be {wanted}")
    value = _converted(value, part)
    if option.check is not None and part != "None":
        value = option.check(value)
    return value


def option_problems(
    kind: str, name: str, given: object, options: Mapping[str, Option]
) -> list[str]:
    """What is wrong with ``given`` as the options of ``kind`` ``name``: not a mapping,
    unknown option names (listing the valid ones), values of the wrong type or range."""
    if not isinstance(given, Mapping):
        return [f"{kind} {name!r}: its options must be a mapping; got {given!r}"]
    unknown = sorted(str(key) for key in set(given) - set(options))
    if unknown:
        listed = ", ".join(sorted(options)) or "none"
        return [f"{kind} {name!r} has no option(s) {', '.join(unknown)}; valid options: {listed}"]
    problems = []
    for key, value in given.items():
        try:
            checked_value(options[key], value)
        except ValueError as error:
            option = options[key]
            about = f"; {option.help}" if option.help else ""
            problems.append(
                f"{kind} {name!r} option {key!r} = {value!r} {error} "
                f"(default {option.default!r}{about})"
            )
    return problems


def resolve_options(
    kind: str, name: str, given: Mapping[str, object], options: Mapping[str, Option]
) -> dict[str, object]:
    """The defaults of ``options`` merged with ``given``, checked and converted;
    ValueError listing every problem if any."""
    problems = option_problems(kind, name, given, options)
    if problems:
        raise ValueError("; ".join(problems))
    resolved = {key: option.default for key, option in options.items()}
    resolved.update({key: checked_value(options[key], value) for key, value in given.items()})
    return resolved


# ------------------------------------------------------------------- value checks


def positive(value: Any) -> Any:
    if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError("must be positive and finite")
    return value


def at_least(lower: float) -> Check:
    """Values >= ``lower`` (finite)."""

    def check(value: Any) -> Any:
        if not math.isfinite(value) or value < lower:
            raise ValueError(f"must be a finite number >= {lower}")
        return value

    return check


def fraction(value: Any) -> Any:
    """A value in (0, 1]: the momentum of running statistics."""
    if not 0 < value <= 1:
        raise ValueError("must be a number in (0, 1]")
    return value


def choice(*valid: object) -> Check:
    """One of ``valid``."""

    def check(value: Any) -> Any:
        if value not in valid:
            raise ValueError(f"must be one of {', '.join(map(str, valid))}")
        return value

    return check


def each_positive(values: Any) -> Any:
    """A list whose every number is positive and finite (an empty list too)."""
    if not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError("must be a list of positive numbers")
    return values


def non_empty(check: Check) -> Check:
    """``check`` of a list that must also hold at least one value."""

    def checked(values: Any) -> Any:
        if not values:
            raise ValueError("must not be empty")
        return check(values)

    return checked
