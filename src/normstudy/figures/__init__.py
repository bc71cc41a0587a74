"""The study's figures: one registry, one module per figure (docs/design.md, "Layout").

:mod:`normstudy.figures.catalog` holds every figure's name, module, title and caption and
imports nothing heavy, so the workflow can read it while Snakemake parses the Snakefile;
this package therefore loads the drawing code (matplotlib, pandas) only when one of its
drawing names is first used. Usage::

    from normstudy.figures import Tables, render_figure

    result = render_figure("acc_vs_depth", Tables.load("results/tables"), "results/figures")
"""

from __future__ import annotations

from typing import Any

from normstudy.figures.catalog import (
    CATALOG,
    FIGURE_NAMES,
    FigureInfo,
    figure_info,
    figure_module,
    figure_tables,
    report_caption,
)

DRAWING_NAMES = (
    "FIGURES",
    "FigureResult",
    "FigureSpec",
    "Tables",
    "load_figures",
    "mean_ci",
    "render_figure",
    "render_from_dir",
)

__all__ = [
    "CATALOG",
    "FIGURE_NAMES",
    "FigureInfo",
    "figure_info",
    "figure_module",
    "figure_tables",
    "report_caption",
    *DRAWING_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in DRAWING_NAMES:
        import importlib

        from normstudy.figures import registry

        registry.load_figures()
        home = {"Tables": "tables", "mean_ci": "intervals"}.get(name, "registry")
        return getattr(importlib.import_module(f"normstudy.figures.{home}"), name)
    raise AttributeError(f"module 'normstudy.figures' has no attribute {name!r}")
