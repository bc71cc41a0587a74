"""Critical-difference diagram of the normalizers (Demšar 2006, §3.2.2 and figures 1-2),
from :func:`normstudy.ranking.friedman_ranks`, one panel per study with a ``norm`` axis."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from normstudy import ranking
from normstudy.figures.drawing import finish, new_figure
from normstudy.figures.registry import FigureResult, register_figure, skip
from normstudy.figures.selection import studies_with
from normstudy.figures.style import DIVERGED_COLOR, NORM_COLORS, level_label
from normstudy.figures.tables import Tables

NAME = "cd_diagram"
METRIC = "final_test_acc"
AXIS_Y = 0.0
STEP_Y = 0.55
BAR_Y = 0.9
MIN_BLOCKS = 2
"""The Friedman test compares ranks across blocks: with one block there is no
variation to test (Iman–Davenport's F is 0/0 and the critical difference is not a
difference of anything), so no diagram is drawn, only why."""


def p_text(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3g}"


def title_of(study: str, result: ranking.FriedmanResult) -> str:
    """Study, blocks and the omnibus tests (Friedman chi2 and Iman-Davenport F)."""
    dropped = f", {result.n_blocks_dropped} dropped" if result.n_blocks_dropped else ""
    blocks = f"{result.n_blocks} block{'s' if result.n_blocks != 1 else ''}"
    return (
        f"{study}: {len(result.levels)} normalizers over {blocks}{dropped}; "
        f"Friedman p = {p_text(result.p_value)}, Iman–Davenport p = "
        f"{p_text(result.iman_davenport_p)}"
    )


def draw_diagram(ax, result: ranking.FriedmanResult) -> None:
    """Rank axis (1 = best, left), each level's name joined to its average rank (best
    half on the left, the rest on the right), thick bars under groups of levels whose
    ranks differ by less than the critical difference, and the CD above the axis."""
    ranks = result.average_ranks
    k = len(ranks)
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    left = math.ceil(k / 2)
    ax.axis("off")
    ax.plot([1, k], [AXIS_Y, AXIS_Y], color="black", linewidth=1.0)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [AXIS_Y, AXIS_Y + 0.12], color="black", linewidth=1.0)
        ax.text(tick, AXIS_Y + 0.18, str(tick), ha="center", va="bottom", fontsize=8)
    ax.text((1 + k) / 2, AXIS_Y + 0.5, "average rank (1 = best)", ha="center", fontsize=8)
    for index, (level, rank) in enumerate(ordered):
        on_left = index < left
        depth = AXIS_Y - STEP_Y * ((index if on_left else k - 1 - index) + 1)
        end = 1 - 0.5 if on_left else k + 0.5
        color = NORM_COLORS.get(level, "black")
        ax.plot([rank, rank, end], [AXIS_Y, depth, depth], color=color, linewidth=1.2)
        failed = result.n_diverged.get(level, 0)
        label = level_label("norm", level) + f" ({rank:.2f})"
        if failed:
            label += f", {failed} diverged"
        ax.text(
            end + (-0.05 if on_left else 0.05),
            depth,
            label,
            ha="right" if on_left else "left",
            va="center",
            fontsize=8,
            color=DIVERGED_COLOR if failed else "black",
        )
    for offset, group in enumerate(result.groups):
        low, high = min(ranks[g] for g in group), max(ranks[g] for g in group)
        y = AXIS_Y - 0.18 - 0.14 * offset
        ax.plot(
            [low - 0.03, high + 0.03], [y, y], color="black", linewidth=3.5, solid_capstyle="round"
        )
    cd = result.critical_difference
    if math.isfinite(cd):
        end = min(1 + cd, k)
        ax.plot([1, end], [BAR_Y, BAR_Y], color="black", linewidth=1.2)
        for x in (1, end):
            ax.plot([x, x], [BAR_Y - 0.06, BAR_Y + 0.06], color="black", linewidth=1.2)
        beyond = " > the rank range: no pair can differ" if 1 + cd > k else ""
        ax.text(
            (1 + end) / 2,
            BAR_Y + 0.1,
            f"CD = {cd:.2f} (Nemenyi, α = {result.alpha:g}){beyond}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    else:
        ax.text(1, BAR_Y + 0.1, "no critical difference (fewer than one block)", fontsize=8)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(AXIS_Y - STEP_Y * (left + 0.6), BAR_Y + 0.45)


def untestable(result: ranking.FriedmanResult) -> str | None:
    """Why the ranks cannot be tested (too few blocks, or no Friedman p-value), or None."""
    if result.n_blocks < MIN_BLOCKS:
        return (
            f"{result.n_blocks} block (one combination of the other grid axes); the Friedman "
            f"test and the Nemenyi critical difference need at least {MIN_BLOCKS} blocks"
        )
    if not math.isfinite(result.p_value):
        return "the Friedman test is undefined here" + (f" ({result.note})" if result.note else "")
    return None


def no_diagram(ax, result: ranking.FriedmanResult, reason: str) -> None:
    """No diagram: why, and the average ranks, as text in the panel."""
    ax.axis("off")
    ranks = ", ".join(
        f"{level_label('norm', level)} {rank:.2f}"
        + (f" ({result.n_diverged[level]} diverged)" if result.n_diverged.get(level) else "")
        for level, rank in result.average_ranks.items()
    )
    ax.text(
        0.0,
        0.5,
        textwrap.fill(f"No diagram: {reason}.", 110)
        + "\n"
        + textwrap.fill(f"Average ranks (untested): {ranks}.", 110),
        transform=ax.transAxes,
        va="center",
        fontsize=8,
    )


def rankings(tables: Tables, studies: list[str]) -> tuple[list, list[str]]:
    """(study, FriedmanResult) for every study that can be ranked, and why others cannot."""
    found, notes = [], []
    for study in studies:
        axes = tables.study_axes()[study]
        try:
            result = ranking.friedman_ranks(tables.cells, "norm", axes, metric=METRIC, study=study)
        except (KeyError, ValueError) as error:
            notes.append(f"study {study}: {error}")
            continue
        if result.n_blocks == 0:
            notes.append(f"study {study}: no block has every normalizer ({result.note})")
            continue
        found.append((study, result))
    return found, notes


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    studies = studies_with(tables, ["norm"], min_levels=2)
    if not studies:
        return skip(
            NAME,
            "no study has a 'norm' grid axis with at least two normalizers; studies and "
            f"axes: {tables.study_axes()}",
        )
    found, notes = rankings(tables, studies)
    if not found:
        return skip(NAME, "no study's normalizers can be ranked: " + "; ".join(notes))
    heights = [
        0.9 + STEP_Y * 0.5 * (math.ceil(len(r.levels) / 2) + 2) if not untestable(r) else 0.9
        for _, r in found
    ]
    fig, axes = new_figure(
        len(found), 1, panel_size=(7.0, 1.0), gridspec_kw={"height_ratios": heights}
    )
    fig.set_figheight(sum(heights))
    for ax, (study, result) in zip(axes[:, 0], found, strict=True):
        reason = untestable(result)
        if reason is None:
            draw_diagram(ax, result)
            ax.set_title(title_of(study, result), loc="left", fontsize=8.5)
        else:
            no_diagram(ax, result, reason)
            ax.set_title(study, loc="left", fontsize=8.5)
            notes.append(f"study {study}: no diagram: {reason}")
    fig.supxlabel(
        "Final test accuracy ranked within each block (a combination of the other grid axes, "
        "seeds averaged);\ndiverged cells count as chance accuracy; thick bars join "
        "normalizers whose average ranks differ by less than CD.",
        fontsize=7.5,
    )
    result = FigureResult(NAME, notes=notes)
    finish(result, fig, out_dir, NAME)
    return result
