"""The power report: per study and comparison, the seeds there are, the seeds the t-test
would need for 80% power, and whether the study has them (``results/tables/power.md``
and ``power.csv``, written by the comparisons rule), and the config change that adds the
missing seeds (``normstudy power --suggest``).

Reads the power columns of ``comparisons.parquet`` (:mod:`normstudy.power`). A
comparison is judged on its smallest effect of interest where config.yaml declares one,
else on its observed effect, which is noisy with few seeds and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from normstudy.power import ALPHA, MAX_SEEDS, TARGET_POWER

REPORT_COLUMNS = [
    "study",
    "family",
    "candidate",
    "condition",
    "paired",
    "n_now",
    "n_needed",
    "smallest_effect",
    "n_needed_smallest",
    "basis",
    "n_target",
    "adequate",
]
SMALLEST = "smallest effect"
OBSERVED = "observed effect"


def optional_int(value: object) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return int(value)


def power_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison: n now (the smaller side), the n needed for the observed
    effect and for the smallest effect of interest, the basis of the verdict and the
    verdict (``adequate``: n now >= the n of the basis; None when no n can be given)."""
    rows = []
    for _, row in comparisons.iterrows():
        n_needed = optional_int(row["n_needed"])
        n_smallest = optional_int(row["n_needed_smallest"])
        declared = math.isfinite(float(row["smallest_effect"]))
        basis = SMALLEST if declared else OBSERVED
        target = n_smallest if declared else n_needed
        n_now = int(min(row["n_ref"], row["n_cand"]))
        rows.append(
            {
                "study": row["study"],
                "family": row["family"],
                "candidate": row["candidate"],
                "condition": row["condition"],
                "paired": bool(row["paired"]),
                "n_now": n_now,
                "n_needed": n_needed,
                "smallest_effect": float(row["smallest_effect"]),
                "n_needed_smallest": n_smallest,
                "basis": basis,
                "n_target": target,
                "adequate": None if target is None else n_now >= target,
            }
        )
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    for column in ("n_needed", "n_needed_smallest", "n_target"):
        frame[column] = frame[column].astype("Int64")
    return frame


def study_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per study: comparisons, how many can be judged, how many are adequately powered,
    the fewest seeds now and the most any judged comparison needs."""
    summary = []
    for study, group in rows.groupby("study", sort=True):
        judged = group[group["adequate"].notna()]
        needed = [int(n) for n in judged["n_target"]]
        adequate = int(judged["adequate"].astype(bool).sum())
        summary.append(
            {
                "study": study,
                "comparisons": len(group),
                "judged": len(judged),
                "adequate": adequate,
                "n_now": int(group["n_now"].min()),
                "n_needed_max": max(needed) if needed else None,
                "basis": ", ".join(sorted(set(group["basis"]))),
                "powered": adequate == len(judged) if len(judged) else None,
            }
        )
    frame = pd.DataFrame(summary)
    if not frame.empty:
        frame["n_needed_max"] = frame["n_needed_max"].astype("Int64")
    return frame


def cell_text(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for record in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell_text(v) for v in record) + " |")
    return lines


def power_markdown(rows: pd.DataFrame, scale: str | None = None) -> str:
    """The report as Markdown: what the numbers mean, a summary per study, and every
    comparison of every study."""
    at = f" at {scale} scale" if scale else ""
    lines = [
        f"# Power of the comparisons{at}",
        "",
        f"Seeds (a side) for {TARGET_POWER:.0%} power of the two-sided t-test at α = "
        f"{ALPHA:g} (paired or Welch, as each comparison is; normstudy.power), unadjusted "
        "for the Holm correction, which needs more. `n_needed` is for the observed effect, a "
        "rough guide that is itself noisy with few seeds; `n_needed_smallest` for the "
        "smallest effect of interest declared in config.yaml (`smallest_effect:` of a "
        "comparison), standardized by the observed SD. A study is adequately powered when "
        "every comparison that can be judged has the seeds its basis needs; `–`: no number "
        f"(fewer than two seeds a side, zero variance, a zero effect, or more than {MAX_SEEDS} "
        "seeds needed). Add seeds with `normstudy power --suggest` (README, Statistics).",
        "",
    ]
    if rows.empty:
        return "\n".join([*lines, "No comparisons.", ""])
    summary = study_summary(rows)
    lines += ["## Studies", "", *markdown_table(summary), ""]
    for study, group in rows.groupby("study", sort=True):
        lines += [f"## {study}", ""]
        shown = group.drop(columns=["study"])
        lines += [*markdown_table(shown), ""]
    return "\n".join(lines)


def power_csv(rows: pd.DataFrame) -> str:
    return rows.to_csv(index=False)


# ----------------------------------------------------------------------------- suggest


def extended_seeds(seeds: Sequence[int], n: int) -> list[int]:
    """``seeds`` plus the smallest new non-negative integers, up to ``n`` seeds: the
    existing seeds keep their cells (and cell ids), only the new ones train."""
    result = list(seeds)
    candidate = 0
    while len(result) < n:
        if candidate not in result:
            result.append(candidate)
        candidate += 1
    return result


def seed_key(study: Mapping, scale: str) -> tuple[str, list[int] | None]:
    """Where the study's seed list lives at ``scale`` (``grid.seed`` or, at demo scale
    when the demo variant overrides it, ``demo.grid.seed``) and that list."""
    demo_grid = (study.get("demo") or {}).get("grid") or {}
    if scale == "demo" and "seed" in demo_grid:
        return "demo.grid.seed", list(demo_grid["seed"])
    grid = study.get("grid") or {}
    return "grid.seed", list(grid["seed"]) if "seed" in grid else None


def seed_suggestions(
    rows: pd.DataFrame, studies: Mapping[str, Mapping], scale: str, *, max_seeds: int = 30
) -> list[str]:
    """One line per study: the config.yaml key and its new seed list where seeds are
    missing, with the n it reaches and why; otherwise why the study stays as it is.

    The n is the most any comparison of the study needs within ``max_seeds``; those that
    need more (an observed effect near zero, a smallest effect far below the seeds' spread)
    are counted in the line, not chased: seeds will not settle them.
    """
    lines = []
    for summary in study_summary(rows).itertuples(index=False):
        study = summary.study
        if summary.judged == 0:
            lines.append(f"# {study}: no comparison can be judged (see power.md); unchanged")
            continue
        if summary.powered:
            lines.append(f"# {study}: adequately powered with {summary.n_now} seeds; unchanged")
            continue
        targets = [int(n) for n in rows.loc[rows["study"] == study, "n_target"].dropna()]
        reachable = [n for n in targets if n <= max_seeds]
        beyond = len(targets) - len(reachable)
        out_of_reach = f"{beyond} comparison(s) need more than --max-seeds {max_seeds}"
        if not reachable:
            lines.append(
                f"# {study}: {out_of_reach}, all it can judge: more seeds will not settle "
                "them; consider the smallest_effect or the comparisons; unchanged"
            )
            continue
        target = max(reachable)
        why = f"n needed {target} ({summary.basis})" + (f"; {out_of_reach}" if beyond else "")
        key, seeds = seed_key(studies.get(study, {}), scale)
        if seeds is None:
            lines.append(f"# {study}: {why}, but it has no seed axis: add studies.{study}.{key}")
            continue
        if target <= len(seeds):
            lines.append(
                f"# {study}: {why} and {len(seeds)} seeds are listed, but fewer enter some "
                "comparisons (diverged cells excluded); unchanged"
            )
            continue
        new = extended_seeds(seeds, target)
        lines.append(f"studies.{study}.{key}: {new}   # was {seeds}; {why}")
    return lines
