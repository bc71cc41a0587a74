"""How every figure looks: the style, and the colours, order and labels of normalizers,
freeze policies and parameter roles, read from their catalogs (the same in every figure)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

from cycler import cycler

from normstudy import comparison_specs
from normstudy.catalog import FREEZE_POLICIES, NORMALIZERS, PARAMETER_ROLES
from normstudy.catalog.freeze import ALL_PARAMETERS

NORM_COLORS = {name: entry.colour for name, entry in NORMALIZERS.items()}
"""One colour per normalizer, the same in every figure (the catalog's, which says how
they were chosen)."""

PALETTE = list(NORM_COLORS.values())
"""The same colours in order, for lines of any other axis (distinct up to 14 lines)."""
DIVERGED_COLOR = "#C00000"
CHANCE_COLOR = "#666666"

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "figure.constrained_layout.use": True,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "image.cmap": "viridis",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}
"""One style for every figure (``matplotlib.rc_context``)."""

NORM_ORDER = NORMALIZERS.names()
NORM_LABELS = {name: entry.label for name, entry in NORMALIZERS.items()}
NORM_DASHES = {name: entry.dashes for name, entry in NORMALIZERS.items() if entry.dashes != "-"}
FREEZE_ORDER = FREEZE_POLICIES.names()
FREEZE_LABELS = {name: entry.label for name, entry in FREEZE_POLICIES.items()}
FREEZE_COLORS = {name: entry.colour for name, entry in FREEZE_POLICIES.items()}
_ROLES = sorted(
    [entry for _, entry in PARAMETER_ROLES.items()] + [ALL_PARAMETERS],
    key=lambda role: role.legend_rank,
)
ROLE_ORDER = [role.name for role in _ROLES]
ROLE_LABELS = {role.name: role.label for role in _ROLES}
ROLE_COLORS = {role.name: role.colour for role in _ROLES}
AXIS_LABELS = {
    "depth": "depth (layers)",
    "lr": "learning rate",
    "batch_size": "batch size (examples)",
    "eval_batch_size": "test batch size",
    "width": "width",
    "dataset_options.n_per_class": "training examples per class",
    "seed": "seed",
}
AXIS_SHORT = {
    "dataset_options.n_per_class": "n/class",
    "batch_size": "batch",
    "eval_batch_size": "test batch",
}
LEVEL_ORDERS = {"norm": NORM_ORDER, "freeze": FREEZE_ORDER}


def ordered_levels(axis: str, values: Iterable[object]) -> list[object]:
    """Distinct values of ``axis``: normalizers and freeze policies in the study's order,
    anything else sorted."""
    levels = list(dict.fromkeys(comparison_specs.python_value(v) for v in values))
    order = LEVEL_ORDERS.get(axis)
    if order is not None:
        return sorted(levels, key=lambda v: (order.index(v) if v in order else len(order), v))
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=str)


def number_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def level_label(axis: str, value: object) -> str:
    """A readable label of one axis value (``BatchNorm``, ``γ, β only``, ``lr=0.1``)."""
    value = comparison_specs.python_value(value)
    if axis == "norm":
        return NORM_LABELS.get(value, str(value))
    if axis == "freeze":
        return FREEZE_LABELS.get(value, str(value))
    if axis == "shuffle" and isinstance(value, bool):
        return "shuffled" if value else "not shuffled"
    if axis in ("dataset", "model"):
        return str(value)
    return f"{AXIS_SHORT.get(axis, axis)}={number_text(value)}"


def condition_label(axes: Sequence[str], key: Sequence[object]) -> str:
    return ", ".join(level_label(a, v) for a, v in zip(axes, key, strict=True)) or "all cells"


TITLE_CHARS_PER_INCH = 13
MAX_TITLE_LINES = 2
# Title parts are joined by ", "; freeze labels ("γ, β only") hold one themselves.
PART_SEPARATOR = re.compile(r", (?!β)")


def set_panel_title(ax, text: str) -> None:
    """A left-aligned panel title wrapped to the panel's width (each line on its own),
    in a smaller font when it would take more than :data:`MAX_TITLE_LINES` lines."""
    width = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(20, int(width * TITLE_CHARS_PER_INCH))
    lines = wrapped(text, chars)
    size = None
    if len(lines) > MAX_TITLE_LINES:
        size = 7.5
        lines = wrapped(text, int(chars * 9.5 / size))
    ax.set_title("\n".join(lines), loc="left", fontsize=size)


def wrapped(text: str, chars: int) -> list[str]:
    return [part for line in text.split("\n") for part in textwrap.wrap(line, chars) or [""]]


def title_parts(title: str) -> list[str]:
    """``study: a, b`` as ``[study, a, b]``."""
    head, colon, rest = title.partition(": ")
    return [head, *PART_SEPARATOR.split(rest)] if colon else [head]


def shared_titles(titles: Sequence[str]) -> tuple[str, list[str]]:
    """(what all non-empty ``titles`` share, each title without it); nothing is shared
    by fewer than two titles."""
    given = [title_parts(t) for t in titles if t]
    common = [p for p in given[0] if all(p in parts for parts in given)] if given else []
    if len(given) < 2:
        common = []
    rests = []
    for title in titles:
        parts = title_parts(title) if title else [""]
        rest = ", ".join(p for p in parts[1:] if p not in common)
        head = "" if parts[0] in common else parts[0]
        rests.append(f"{head}: {rest}" if head and rest else head or rest)
    if not common:
        return "", rests
    head = common[0] if common[0] == given[0][0] else None
    parts = common[1:] if head else common
    return (f"{head}: {', '.join(parts)}" if head and parts else head or ", ".join(parts)), rests


def set_panel_titles(fig, axes: Sequence, titles: Sequence[str]) -> None:
    """Panel titles with what all of them share said once, above the figure: the
    panels then name only what differs (empty titles are skipped and shared by all)."""
    common, rests = shared_titles(titles)
    for ax, title, rest in zip(axes, titles, rests, strict=True):
        if title:
            set_panel_title(ax, rest)
    if common:
        fig.suptitle(common, x=0.01, ha="left", fontsize=10)


def axis_label(axis: str) -> str:
    return AXIS_LABELS.get(axis, axis)


LINESTYLES = ["-", "--", ":", "-."]
FIXED_COLORS = {"norm": NORM_COLORS, "freeze": FREEZE_COLORS}


def line_styles(
    axes: Sequence[str], keys: Sequence[tuple], styled: bool = True
) -> dict[tuple, tuple[str, str]]:
    """(colour, line style) of each line key (values of ``axes``, in display order).

    A normalizer or freeze policy keeps its colour in every figure; a second axis with
    at most four levels then sets the line style (e.g. shuffled vs not). Anything else
    takes palette colours in order. ``styled=False`` (figures that use line styles
    themselves) keeps every line solid, so it keeps fixed colours for one axis only.
    """
    fixed = FIXED_COLORS.get(axes[0]) if axes else None
    if fixed is not None and not styled and len(axes) == 1:
        return {
            key: (fixed.get(key[0], PALETTE[i % len(PALETTE)]), "-") for i, key in enumerate(keys)
        }
    if fixed is None or not styled or len(axes) > 2:
        return {key: (PALETTE[i % len(PALETTE)], "-") for i, key in enumerate(keys)}
    first = ordered_levels(axes[0], [k[0] for k in keys])
    second = ordered_levels(axes[1], [k[1] for k in keys]) if len(axes) == 2 else []
    if len(second) > len(LINESTYLES):
        return {key: (PALETTE[i % len(PALETTE)], "-") for i, key in enumerate(keys)}
    styles = {}
    for key in keys:
        color = fixed.get(key[0], PALETTE[first.index(key[0]) % len(PALETTE)])
        if second:
            linestyle = LINESTYLES[second.index(comparison_specs.python_value(key[1]))]
        else:
            linestyle = NORM_DASHES.get(key[0], "-") if axes[0] == "norm" else "-"
        styles[key] = (color, linestyle)
    return styles
