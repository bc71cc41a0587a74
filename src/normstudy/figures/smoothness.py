"""Loss-landscape smoothness through training (Santurkar et al. 2018, §3.1, their figure
4), from the ``smoothness`` probe: how much the loss and its gradient vary along the
gradient direction, and the effective β-smoothness, for BN against no BN."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.registry import FigureResult, register_figure
from normstudy.figures.tables import Tables
from normstudy.figures.trajectories import Quantity, render_trajectories

NAME = "smoothness"
QUANTITIES = (
    Quantity("loss_range", "loss_range", "loss variation along the gradient"),
    Quantity("grad_change_max", "grad_change_max", "gradient predictiveness (max change)"),
    Quantity("beta_smoothness", "beta_smoothness", "effective β-smoothness"),
)


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    return render_trajectories(NAME, tables, out_dir, "smoothness", QUANTITIES)
