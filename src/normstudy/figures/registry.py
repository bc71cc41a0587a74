"""The figure registry: each figure module registers its drawing function under its catalog
name; rendering one writes its files atomically, or why it was skipped."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

from normstudy.figures.catalog import CATALOG, figure_info
from normstudy.figures.style import (
    STYLE,
)
from normstudy.figures.tables import Tables
from normstudy.io import write_text_atomic
from normstudy.registry import Registry

log = logging.getLogger("normstudy.figures")


@dataclass
class FigureResult:
    """What rendering one figure did: the files written, or why it was skipped.

    ``texts`` holds every text drawn (titles, labels, legends, annotations), ``notes``
    the parts left out (e.g. a study without the needed records).
    """

    name: str
    written: list[Path] = field(default_factory=list)
    skipped: str | None = None
    texts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Render = Callable[[Tables, Path], FigureResult]


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its drawing function and the catalog's title, caption and
    module (the file that draws it, relative to the ``normstudy`` package)."""

    name: str
    render: Render
    title: str
    caption: str
    module: str


FIGURES: Registry[FigureSpec] = Registry(CATALOG)


def register_figure(name: str) -> Callable[[Render], Render]:
    """Register ``render`` under ``name`` with the catalog's title, caption and module.

    The function must live in the module the catalog names, so that the workflow's
    per-figure input (that file) is the code that draws it.
    """
    info = figure_info(name)

    def decorator(render: Render) -> Render:
        module = render.__module__.removeprefix("normstudy.").replace(".", "/") + ".py"
        if module != info.module:
            raise ValueError(
                f"figure {name!r} is drawn in {module} but the catalog names {info.module}"
            )
        FIGURES.add(name, FigureSpec(name, render, info.title, info.caption, info.module))
        return render

    return decorator


def load_figures() -> Registry[FigureSpec]:
    """Import every figure module of the catalog (each registers itself); the registry."""
    for _, info in CATALOG.items():
        importlib.import_module("normstudy." + info.module.removesuffix(".py").replace("/", "."))
    return FIGURES


def owned_files(name: str, out_dir: Path) -> list[Path]:
    """Files a previous rendering of ``name`` may have left in ``out_dir``."""
    if not out_dir.is_dir():
        return []
    return [
        path
        for path in out_dir.iterdir()
        if path.is_file() and (path.name.startswith(f"{name}.") or path.name.startswith(f"{name}-"))
    ]


def render_figure(name: str, tables: Tables, out_dir: str | os.PathLike[str]) -> FigureResult:
    """Draw figure ``name`` into ``out_dir``: ``<name>.png`` and ``.pdf`` (variants as
    ``<name>-<variant>.png``/``.pdf``, tables as ``<name>.csv``/``.md``), or
    ``<name>.skipped.txt`` with the reason when the tables cannot support it."""
    spec = load_figures().get(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in owned_files(name, out_dir):
        stale.unlink()
    with matplotlib.rc_context(STYLE):
        result = spec.render(tables, out_dir)
    if result.skipped is not None:
        log.warning("figure %s skipped: %s", name, result.skipped)
        write_text_atomic(out_dir / f"{name}.skipped.txt", result.skipped + "\n")
    else:
        for note in result.notes:
            log.info("figure %s: %s", name, note)
    return result


def render_from_dir(
    name: str, tables_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> FigureResult:
    """:func:`render_figure` on the tables in ``tables_dir`` that the figure reads (for
    the workflow's CLI; :func:`normstudy.figures.catalog.figure_tables`)."""
    return render_figure(name, Tables.load(tables_dir, figure_info(name).tables), out_dir)


def skip(name: str, reason: str) -> FigureResult:
    return FigureResult(name=name, skipped=reason)
