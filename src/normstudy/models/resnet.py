"""The CIFAR ResNet of He et al. 2016 §4.2, as used by Frankle et al. 2020."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.models.common import (
    NormSchedule,
    check_shortcut,
    image_shape,
    normed_conv,
    residual_stages,
    scaled_channels,
)
from normstudy.models.registry import register_model
from normstudy.norms.base import NormFactory

STAGE_CHANNELS = (16, 32, 64)


def blocks_per_stage(depth: object) -> int:
    """n for depth 6n + 2 (stem conv + 3 stages of n two-conv blocks + head)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"resnet depth must be 6n+2 with n >= 1 blocks per stage "
            f"(e.g. 14, 20, 32, 56, 110, 218, 434, 866); got {depth!r}"
        )
    return (depth - 2) // 6


@register_model("resnet")
class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images (He et al. 2016 §4.2).

    conv3x3 stem -> norm -> ReLU; three stages of n basic blocks with 16, 32, 64 channels
    times ``width`` (a multiplier; Frankle et al. 2020's wide ResNets use 2, 4, ...),
    stride 2 at the first block of stages 2 and 3; global average pool; head.

    ``shortcut`` where the shape changes: "B" (default) is a strided 1x1 conv + norm, as
    in Frankle et al.'s code (open_lth ``models/cifar_resnet.py``, which gives ResNet-20
    272,474 and ResNet-110 1,730,714 parameters with Batch Norm); "A" is the parameter-free
    strided identity with zero-padded channels that He et al. 2016 §4.2 use on CIFAR
    (their 0.27M and 1.7M: ResNet-20 269,722, ResNet-110 1,727,962 parameters).
    ``skip = False`` gives the plain network of He et al. 2016 §4.1 (no shortcuts).
    A projection shortcut's normalizer is present iff the block's second conv has one.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm: NormFactory,
        depth: int,
        width: float,
        norm_every: int,
        skip: bool,
        shortcut: str,
    ) -> None:
        super().__init__()
        in_channels, _, _ = image_shape("resnet", input_shape)
        n = blocks_per_stage(depth)
        channels = [scaled_channels("resnet", c, width) for c in STAGE_CHANNELS]
        shortcut = check_shortcut("resnet", shortcut)
        schedule = NormSchedule(norm, norm_every)
        self.stem = normed_conv(
            in_channels, channels[0], 3, 1, schedule.next_norm(channels[0], "conv")
        )
        self.blocks = residual_stages(schedule, channels[0], channels, n, skip, shortcut)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))
