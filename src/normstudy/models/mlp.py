"""Fully connected ReLU networks (Torri 2022 §3.2; Morwani 2020's deep MLP and noise task)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.models.common import NormSchedule, normed_dense, positive_int
from normstudy.models.registry import register_model
from normstudy.norms.base import NormFactory


@register_model("mlp")
class MLP(nn.Module):
    """Flatten, then ``depth`` hidden layers of ``width`` units (dense -> norm -> ReLU), head.

    ``depth`` counts hidden layers, so the network has ``depth + 1`` dense layers: Torri
    2022's CIFAR-10 MLP is depth 2; Morwani 2020's 10-layer MLP is depth 9; the noise
    robustness task (1 hidden layer of 100 units) is depth 1, width 100. Any input shape
    works: images are flattened. ``skip`` has no effect (no residual connections).
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm: NormFactory,
        depth: int,
        width: int,
        norm_every: int,
        skip: bool,
    ) -> None:
        super().__init__()
        depth = positive_int("mlp", "depth", depth, "the number of hidden layers, >= 1")
        width = positive_int("mlp", "width", width, "the number of hidden units, >= 1")
        schedule = NormSchedule(norm, norm_every)
        features = math.prod(input_shape)
        layers = []
        for _ in range(depth):
            layers.append(normed_dense(features, width, schedule.next_norm(width, "dense")))
            features = width
        self.hidden = nn.ModuleList(layers)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)
