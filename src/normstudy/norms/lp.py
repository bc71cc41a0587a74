"""Lp batch normalization: centred or not, divided by a batch Lp scale."""

from __future__ import annotations

import math

import torch

from normstudy.norms.base import RunningStatisticsNorm
from normstudy.norms.common import (
    batch_axes,
    per_channel,
    update_running_,
)
from normstudy.norms.registry import register_norm


@register_norm("lp")
class LpNorm(RunningStatisticsNorm):
    """Lp batch normalization (Hoffer et al. 2018, "Norm matters", §4; Morwani 2020, §4).

    Per channel, over the batch and spatial axes: ``c = x - mu`` with ``mu`` the batch
    mean if ``centered`` (else ``c = x``), and ``x_hat = c / s`` with the Lp scale
    ``s = (mean |c|**p + eps) ** (1/p)`` for finite p and ``s = max |c| + eps`` for
    p = inf. Centred L2 is Batch Norm in training mode exactly (biased variance, eps
    added to it); Morwani compares centred and uncentred L1, L2, L3 and L-inf.

    We do not include Hoffer et al.'s Gaussian-consistency constant (sqrt(pi/2) for
    L1, a batch-size-dependent one for L-inf) that makes s estimate the standard
    deviation of Gaussian activations: it rescales x_hat by a constant that gamma
    absorbs, so x_hat is scaled by the plain batch Lp mean. At initialisation x_hat
    thus has a standard deviation near 1.25 (L1), 1 (L2), 0.86 (L3) or well below 1
    (L-inf) for Gaussian activations.

    In evaluation mode ``mu`` and the moment (``mean |c|**p``, or ``max |c|`` for
    p = inf) come from running estimates updated in training like Batch Norm's
    (``running <- (1 - momentum) * running + momentum * batch``), without Bessel's
    correction, which has no Lp counterpart; centred L2 therefore differs from Batch
    Norm in evaluation by that factor n / (n - 1) inside the square root.
    """

    running = {"running_mean": 0.0, "running_moment": 1.0}

    def __init__(
        self, num_features: int, kind: str, *, eps: float, momentum: float, p: float, centered: bool
    ) -> None:
        super().__init__(num_features, kind, eps=eps, momentum=momentum)
        self.p = p
        self.centered = centered

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - per_channel(self.channel_mean(x), x) if self.centered else x
        return centred / per_channel(self.channel_scale(centred), x)

    def channel_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel batch mean in training (and tracked), the running mean in evaluation."""
        if not self.training:
            return self.running_mean
        mean = x.mean(batch_axes(x))
        update_running_(self.running_mean, mean, self.momentum)
        return mean

    def channel_scale(self, centred: torch.Tensor) -> torch.Tensor:
        """Per-channel Lp scale ``s`` of the (centred) activations."""
        moment = self.channel_moment(centred)
        if math.isinf(self.p):
            return moment + self.eps
        return (moment + self.eps) ** (1.0 / self.p)

    def channel_moment(self, centred: torch.Tensor) -> torch.Tensor:
        """``mean |c|**p`` (``max |c|`` for p = inf) over the batch in training (and
        tracked), the running estimate in evaluation."""
        if not self.training:
            return self.running_moment
        magnitude = centred.abs()
        axes = batch_axes(centred)
        if math.isinf(self.p):
            moment = magnitude.amax(axes)
        else:
            moment = magnitude.pow(self.p).mean(axes)
        update_running_(self.running_moment, moment, self.momentum)
        return moment
