"""BMLV and LMBV: Batch Norm's mean with Layer Norm's scale, and the reverse.

"Is Batch Norm unique?" (2020), §2 and table 1, built to separate the effect of
subtracting the batch mean from that of dividing by the batch standard deviation.
Both follow the paper's form ``x_hat = (x - mu) / sigma``, with mu over the "mean
axes" and sigma over the "std axes". We take sigma as the root mean square, over the
std axes, of the centred activations ``x - mu`` (plus eps), so that x_hat has unit
mean square along those axes (the paper's "consistent scaling"); for Batch and Layer
Norm, where both axes coincide, this is the usual biased standard deviation.
"""

from __future__ import annotations

import torch

from normstudy.norms.base import RunningStatisticsNorm
from normstudy.norms.common import (
    batch_axes,
    layer_axes,
    mean_square,
    per_channel,
    update_running_,
)
from normstudy.norms.registry import register_norm


@register_norm("bmlv")
class BatchMeanLayerVar(RunningStatisticsNorm):
    """Batch-Mean-Layer-Variance: ``x_hat = (x - mu_B) / sigma_L``.

    ``mu_B`` is the per-channel mean over the batch (and spatial) axes, as in Batch
    Norm; ``sigma_L**2 = mean over (C, H, W) of (x - mu_B)**2`` per example. In
    evaluation mode ``mu_B`` is a running mean (updated in training like Batch Norm's,
    ``running <- (1 - momentum) * running + momentum * mu_B``); ``sigma_L`` is always
    the example's own.
    """

    running = {"running_mean": 0.0}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - per_channel(self.channel_mean(x), x)
        return centred / torch.sqrt(mean_square(centred, layer_axes(x)) + self.eps)

    def channel_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel batch mean in training (and tracked), the running mean in evaluation."""
        if not self.training:
            return self.running_mean
        mean = x.mean(batch_axes(x))
        update_running_(self.running_mean, mean, self.momentum)
        return mean


@register_norm("lmbv")
class LayerMeanBatchVar(RunningStatisticsNorm):
    """Layer-Mean-Batch-Variance: ``x_hat = (x - mu_L) / sigma_B``.

    ``mu_L`` is the per-example mean over (C, H, W), as in Layer Norm;
    ``sigma_B**2 = mean over (N, H, W) of (x - mu_L)**2`` per channel, the batch mean
    square of the layer-centred activations. In evaluation mode ``sigma_B**2`` is a
    running estimate (updated in training with ``momentum``, like Batch Norm's
    running variance but without Bessel's correction: no mean is estimated over the
    axes it averages); ``mu_L`` is always the example's own.
    """

    running = {"running_var": 1.0}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(layer_axes(x), keepdim=True)
        return centred / torch.sqrt(per_channel(self.channel_var(centred), x) + self.eps)

    def channel_var(self, centred: torch.Tensor) -> torch.Tensor:
        """Per-channel batch mean square in training (and tracked), the running one in eval."""
        if not self.training:
            return self.running_var
        var = centred.pow(2).mean(batch_axes(centred))
        update_running_(self.running_var, var, self.momentum)
        return var
