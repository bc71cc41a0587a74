"""The normalizers' options and their checks, without torch.

The normalizer classes (:mod:`normstudy.norms`) check their options with these functions
when they are built, and :mod:`normstudy.grid` checks every study's ``norm_options`` with
them while Snakemake parses the workflow, so a bad value fails before any job starts.
Checks that need a layer's shape (Group Norm's ``groups`` must divide the channel count)
run when the model is built. ``tests/test_names.py`` proves :data:`NORM_OPTIONS` equals
the options of the registered classes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

NORM_OPTIONS: dict[str, tuple[str, ...]] = {
    "batch": ("eps", "momentum"),
    "batch_train": ("eps",),
    "batch_noisy": ("eps", "momentum", "noise_mean", "noise_var"),
    "layer": ("eps",),
    "group": ("eps", "groups"),
    "instance": ("eps",),
    "weight": ("eps",),
    "none": (),
    "noisy_none": ("noise_mean", "noise_var"),
    "bmlv": ("eps", "momentum"),
    "lmbv": ("eps", "momentum"),
    "prelayer": ("eps",),
    "regnorm": ("eps", "reg_units", "reg_reduce"),
    "preregnorm": ("eps", "reg_units", "reg_reduce"),
    "lp": ("eps", "momentum", "p", "centered"),
}
P_VALUES = (1, 2, 3, math.inf)
REG_UNITS = ("neuron", "channel")
"""RegNorm's batch means: per neuron (channel and position) or per channel."""
REG_REDUCE = ("sum", "mean")
"""How RegNorm reduces the squared batch means: their sum or their mean."""


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_eps(eps: object) -> float:
    """``eps`` as a float; it must be a positive number."""
    if not _is_real(eps) or not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a positive number; got {eps!r}")
    return float(eps)


def check_momentum(momentum: object) -> float:
    """``momentum`` of running statistics as a float; it must lie in (0, 1]."""
    if not _is_real(momentum) or not 0 < momentum <= 1:
        raise ValueError(f"momentum must be a number in (0, 1]; got {momentum!r}")
    return float(momentum)


def check_at_least(name: str, value: object, lower: float) -> float:
    """``value`` of option ``name`` as a float; it must be a finite number >= ``lower``."""
    if not _is_real(value) or not math.isfinite(value) or value < lower:
        raise ValueError(f"{name} must be a finite number >= {lower}; got {value!r}")
    return float(value)


def check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


def check_choice(name: str, value: object, valid: tuple[str, ...]) -> str:
    """``value`` of option ``name``; it must be one of ``valid``."""
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}; got {value!r}")
    return str(value)


def parse_p(p: object) -> float:
    """The norm order: 1, 2, 3, or ``math.inf`` (given as ``float('inf')`` or ``"inf"``)."""
    if isinstance(p, str) and p.strip().lower() == "inf":
        return math.inf
    if isinstance(p, (int, float)) and not isinstance(p, bool) and p in P_VALUES:
        return p if math.isinf(p) else int(p)
    raise ValueError(f"Lp normalization needs p in 1, 2, 3, 'inf' (or float('inf')); got {p!r}")


OPTION_CHECKS: dict[str, Callable[[object], object]] = {
    "eps": check_eps,
    "momentum": check_momentum,
    "noise_mean": lambda value: check_at_least("noise_mean", value, 0.0),
    "noise_var": lambda value: check_at_least("noise_var", value, 1.0),
    "groups": lambda value: check_positive_int("groups", value),
    "p": parse_p,
    "centered": lambda value: check_bool("centered", value),
    "reg_units": lambda value: check_choice("reg_units", value, REG_UNITS),
    "reg_reduce": lambda value: check_choice("reg_reduce", value, REG_REDUCE),
}


def norm_options_errors(norm: str, options: Mapping[str, object]) -> list[str]:
    """What is wrong with ``options`` for normalizer ``norm`` (unknown names, bad values)."""
    valid = NORM_OPTIONS.get(norm)
    if valid is None:
        return []
    unknown = sorted(set(options) - set(valid))
    if unknown:
        return [
            f"normalizer {norm!r} has no option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(valid) or 'none'}"
        ]
    errors = []
    for name, value in options.items():
        try:
            OPTION_CHECKS[name](value)
        except ValueError as error:
            errors.append(f"norm_options of {norm!r}: {error}")
    return errors
