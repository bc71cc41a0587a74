"""What each plotted quantity can be, in one place: its label and possible range, and how
many seeds an interval needs. Imports nothing heavy (the catalog's captions read it).

Every figure draws intervals and sets its value axis through :data:`METRICS`, so that no
band, error bar or axis reaches values the quantity cannot take (an accuracy above 100%,
a correlation below -1, a non-positive value on a log axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SEEDS_FOR_INTERVAL = 5
"""Fewer seeds than this: each seed's value is drawn as a point with the range of the
seeds, not a Student-t interval. With n seeds the 95% interval is mean ± t(0.975, n−1)·s/√n;
t is 12.7 at n = 2, 4.3 at n = 3 and 3.2 at n = 4, and s itself rests on n−1 degrees of
freedom (its relative standard error about 1/√(2(n−1)): 71% at n = 2, 41% at n = 4), so
such an interval mostly shows the t quantile's blow-up and the noise of s, not the data.
From n = 5 (t = 2.8, s within about 35%) the interval is drawn, clipped to the range."""


@dataclass(frozen=True)
class Metric:
    """A plotted quantity: axis ``label``, the range ``[low, high]`` its values can take
    (as drawn, e.g. accuracy in percent), and whether it is drawn on a log axis
    (``log``: positive by definition; intervals are then computed on the log scale)."""

    label: str
    low: float = -math.inf
    high: float = math.inf
    log: bool = False

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


ACCURACY = Metric("accuracy (%)", 0.0, 100.0)
METRICS: dict[str, Metric] = {
    "accuracy": ACCURACY,
    "final_test_acc": Metric("test accuracy (%)", 0.0, 100.0),
    "final_train_acc": Metric("training accuracy (%)", 0.0, 100.0),
    "final_val_acc": Metric("validation accuracy (%)", 0.0, 100.0),
    "best_val_acc": Metric("best validation accuracy (%)", 0.0, 100.0),
    "gap": Metric("train − test accuracy (pp)", -100.0, 100.0),
    "loss": Metric("cross-entropy loss", 0.0, math.inf, log=True),
    "lambda_1": Metric("top eigenvalue λ1"),
    "outlier_ratio": Metric("outlier ratio λ1/λk"),
    "correlation": Metric("correlation", -1.0, 1.0),
    "grad_magnitude": Metric("mean |gradient|", 0.0, math.inf, log=True),
    "grad_norm": Metric("gradient norm", 0.0, math.inf, log=True),
    "ics_l2": Metric("‖g − g′‖ (mean over layers ≥ 1)", 0.0, math.inf, log=True),
    "ics_cosine": Metric("cos(g, g′) (mean over layers ≥ 1)", -1.0, 1.0),
    "loss_range": Metric("max − min loss along the gradient", 0.0, math.inf, log=True),
    "grad_change_max": Metric("max ‖∇L(θ − ηg) − g‖", 0.0, math.inf, log=True),
    "beta_smoothness": Metric("β (max gradient change / step)", 0.0, math.inf, log=True),
    "activation_norm": Metric("activation norm (per example)", 0.0, math.inf, log=True),
    "activation_grad_norm": Metric("‖∂L/∂activation‖", 0.0, math.inf, log=True),
    "weight_norm": Metric("weight norm ‖W‖", 0.0, math.inf, log=True),
}


def metric(name: str) -> Metric:
    """The entry of ``name``; unknown names list the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
