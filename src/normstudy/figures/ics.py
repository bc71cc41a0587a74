"""Internal covariate shift through training (Santurkar et al. 2018, §2.2, their figure 5),
from the ``ics`` probe: how much a layer's gradient changes when the earlier layers take
their step, ``||g - g'||`` and ``cos(g, g')``, for BN, noisy BN and no BN."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.registry import FigureResult, register_figure
from normstudy.figures.tables import Tables
from normstudy.figures.trajectories import Quantity, render_trajectories

NAME = "ics"
QUANTITIES = (
    # layer 0 has no earlier layer: its ICS is 0 by definition, left out of the mean
    Quantity("ics_l2", "ics_l2", "‖g − g′‖ (ICS, larger = more shift)", first_layer=1),
    Quantity("ics_cosine", "ics_cosine", "cos(g, g′) (1 = no shift)", first_layer=1),
)


@register_figure(NAME)
def render(tables: Tables, out_dir: Path) -> FigureResult:
    return render_trajectories(NAME, tables, out_dir, "ics", QUANTITIES)
