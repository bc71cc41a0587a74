"""Cells on disk that no plan uses: outdated by a version bump, or left by an edited config.

A fix that bumps a part's version (:mod:`normstudy.behaviour`) gives the cells using that
part new ids; their old directories stay under ``results/cells`` so that the fix can be
compared with what it replaced. This module finds them (for the tables job's warning and
``normstudy status``) and lists or removes everything of a cell that no plan uses
(``normstudy clean``): its directory, checkpoint, finished copy, logs and benchmark.
Imports no torch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normstudy import behaviour
from normstudy.io import read_json

CELL_FILES = {
    "checkpoints": (".pt", ".pt.finished", ".pt.rejected"),
    "logs/train": (".log",),
    "benchmarks/train": (".tsv",),
}
"""Where the workflow keeps a cell's files outside its directory (``workflow/rules/train.smk``),
by the suffix after the cell id."""


def cell_dirs(cells_dir: Path) -> list[str]:
    """The cell ids with a directory under ``cells_dir`` (hidden staging names left out)."""
    if not cells_dir.is_dir():
        return []
    return sorted(p.name for p in cells_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def made_by(cell_dir: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A finished cell's config and summary, or None (unfinished or unreadable)."""
    try:
        config, summary = read_json(cell_dir / "config.json"), read_json(cell_dir / "summary.json")
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(summary, dict):
        return None
    return config, summary


def outdated_cells(
    cells_dir: str | Path, skip: Iterable[str] = ()
) -> dict[str, dict[str, tuple[int, int]]]:
    """Finished cells under ``cells_dir`` (but those in ``skip``, e.g. the current plan's)
    made by a version of a part that is no longer current: cell -> part -> (made, now)."""
    cells_dir, skip = Path(cells_dir), set(skip)
    outdated = {}
    for cell in cell_dirs(cells_dir):
        if cell in skip or (found := made_by(cells_dir / cell)) is None:
            continue
        try:
            changed = behaviour.outdated_parts(*found)
        except (KeyError, TypeError, behaviour.VersionError):
            continue  # a config of another code generation: not ours to judge
        if changed:
            outdated[cell] = changed
    return outdated


def outdated_warning(outdated: Mapping[str, Mapping[str, tuple[int, int]]], results: str) -> str:
    """The warning for cells outdated by a version bump: how many, which parts, what to do."""
    parts: dict[str, int] = {}
    for changed in outdated.values():
        for part in changed:
            parts[part] = parts.get(part, 0) + 1
    listed = ", ".join(f"{part} ({count} cells)" for part, count in sorted(parts.items()))
    example = next(iter(outdated))
    return (
        f"normstudy: warning: {len(outdated)} cell(s) under {results}/cells were made by "
        f"versions no longer current: {listed}; e.g. {example}: "
        f"{behaviour.describe_outdated(outdated[example])}. They are kept, not in the tables "
        f"(their cells are trained again under new ids); `normstudy clean --results {results}` "
        "lists them, with --remove deletes them."
    )


@dataclass
class Unused:
    """A cell that no plan uses, with why and every file of it on disk."""

    cell_id: str
    reason: str
    paths: list[Path] = field(default_factory=list)


def cells_of_every_scale(workflow_config: Mapping[str, Any]) -> dict[str, set[str]]:
    """Scale -> the cell ids of the config's plan at that scale (every study). A cell of the
    paper scale is not unused because the last run was a demo, nor the reverse."""
    from normstudy.grid import SCALES, plan_studies

    return {scale: set(plan_studies({**workflow_config, "scale": scale}).cells) for scale in SCALES}


def owner(name: str, suffixes: tuple[str, ...]) -> str | None:
    """The cell id a file name of a cell belongs to, or None (hidden or foreign names)."""
    if name.startswith("."):
        return None
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def unused_cells(results: str | Path, keep: set[str]) -> list[Unused]:
    """Every cell with files under ``results`` whose id is not in ``keep``, with its files
    and why it is unused (made by outdated versions, or in no plan)."""
    results = Path(results)
    found: dict[str, Unused] = {}
    for cell in cell_dirs(results / "cells"):
        if cell not in keep:
            found.setdefault(cell, Unused(cell, "")).paths.append(results / "cells" / cell)
    for where, suffixes in CELL_FILES.items():
        directory = results / where
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            cell = owner(path.name, suffixes)
            if cell is not None and cell not in keep:
                found.setdefault(cell, Unused(cell, "")).paths.append(path)
    outdated = outdated_cells(results / "cells", skip=keep)
    for cell, unused in found.items():
        if cell in outdated:
            unused.reason = f"made by {behaviour.describe_outdated(outdated[cell])}"
        elif (results / "cells" / cell / "summary.json").exists():
            unused.reason = "finished; in no plan of the config"
        else:
            unused.reason = "unfinished; in no plan of the config"
    return sorted(found.values(), key=lambda unused: unused.cell_id)


def remove(unused: Iterable[Unused]) -> int:
    """Delete the files of ``unused``; returns how many paths were removed."""
    count = 0
    for cell in unused:
        for path in cell.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            count += 1
    return count
