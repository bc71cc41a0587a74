"""Batch Norm, and Batch-Train: Batch Norm that keeps using batch statistics at test time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from normstudy.norms.base import Normalizer, RunningStatisticsNorm
from normstudy.norms.registry import register_norm


@register_norm("batch")
class BatchNorm(RunningStatisticsNorm):
    """Batch Norm (Ioffe & Szegedy 2015, Algorithms 1 and 2; §3.2 for convolutions).

    Training mode normalises each channel by its mean and *biased* variance over the
    batch (and spatial) axes, and updates running estimates with
    ``running <- (1 - momentum) * running + momentum * batch`` using the *unbiased*
    batch variance; evaluation mode normalises by the running estimates. This is
    ``torch.nn.BatchNorm1d/2d`` exactly (it calls the same ``F.batch_norm``), without
    its cumulative-average mode (``momentum=None``).
    """

    running = {"running_mean": 0.0, "running_var": 1.0}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``affine(normalize(x))`` in one ``F.batch_norm`` call: the fused kernel saves two
        passes over the activations forward and backward (measured in BENCHMARKS.md)."""
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )


@register_norm("batch_train")
class BatchTrainNorm(Normalizer):
    """Batch Norm with batch statistics in evaluation mode too ("Batch-Train").

    "Is Batch Norm unique?" (2020), §7 and table 3: Batch Norm without aggregated
    (running) statistics at test time, so test predictions depend on the test batch.
    No running statistics are kept.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, None, None, training=True, eps=self.eps)
