"""Activation, activation-gradient and weight norms through training (Morwani 2020, §3
and its figures of the BN and non-BN networks at lr = 1), from the ``norms`` probe: in
the network without BN the three grow together until it diverges; with BN they stay
bounded."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.registry import FigureResult, register_figure
from normstudy.figures.tables import Tables
from normstudy.figures.trajectories import Quantity, render_trajectories

NAME = "norms_training"
QUANTITIES = (
    Quantity("activation_norm", "activation_norm", "activations norm"),
    Quantity("activation_grad_norm", "activation_grad_norm", "activations gradient norm"),
    Quantity("weight_norm", "weight_norm", "weight norm"),
)


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    return render_trajectories(NAME, tables, out_dir, "norms", QUANTITIES)
