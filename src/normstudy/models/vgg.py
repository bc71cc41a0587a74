"""VGG-style plain conv stacks (Simonyan & Zisserman 2015) of any depth, as in G42 2021."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.models.common import NormSchedule, image_shape, normed_conv, scaled_channels
from normstudy.models.registry import register_model
from normstudy.norms.base import NormedLayer, NormFactory

STAGE_CHANNELS = (64, 128, 256, 512, 512)
MIN_DEPTH = len(STAGE_CHANNELS) + 1


def convs_per_stage(depth: object) -> list[int]:
    """``depth - 1`` convs (depth counts the convs and the head) spread over the 5 stages.

    Each stage gets ``(depth - 1) // 5`` convs and the remainder goes to the last stages,
    which are the widest in VGG too: depth 11 -> 2,2,2,2,2; 16 -> 3,3,3,3,3;
    19 -> 3,3,4,4,4; 38 -> 7,7,7,8,8.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < MIN_DEPTH:
        raise ValueError(
            f"vgg depth must be an integer >= {MIN_DEPTH}: the number of conv layers "
            f"(at least one per stage, {len(STAGE_CHANNELS)} stages) + 1 head; got {depth!r}"
        )
    stages = len(STAGE_CHANNELS)
    base, extra = divmod(depth - 1, stages)
    return [base + (1 if stage >= stages - extra else 0) for stage in range(stages)]


class ConvPair(nn.Module):
    """Two same-shape 3x3 convs, each followed by its normalizer, with an optional
    residual connection around them: ``relu(x + norm2(conv2(relu(norm1(conv1(x))))))``."""

    def __init__(self, schedule: NormSchedule, channels: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = normed_conv(channels, channels, 3, 1, schedule.next_norm(channels, "conv"))
        self.conv2 = normed_conv(channels, channels, 3, 1, schedule.next_norm(channels, "conv"))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(x + out if self.residual else out)

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class ConvReLU(nn.Module):
    """One 3x3 conv followed by its normalizer and a ReLU."""

    def __init__(self, conv: NormedLayer) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def stage_modules(
    schedule: NormSchedule, in_channels: int, channels: int, convs: int, residual: bool
) -> list[nn.Module]:
    """One stage: a conv that sets the channel count, then pairs of same-shape convs
    (:class:`ConvPair`), then one more conv if the count is even."""
    modules: list[nn.Module] = [
        ConvReLU(normed_conv(in_channels, channels, 3, 1, schedule.next_norm(channels, "conv")))
    ]
    pairs, single = divmod(convs - 1, 2)
    modules += [ConvPair(schedule, channels, residual) for _ in range(pairs)]
    if single:
        conv = normed_conv(channels, channels, 3, 1, schedule.next_norm(channels, "conv"))
        modules.append(ConvReLU(conv))
    return modules


@register_model("vgg")
class VGG(nn.Module):
    """VGG-d: d - 1 conv layers (3x3, conv -> norm -> ReLU) in 5 stages + a linear head.

    Stages have 64, 128, 256, 512, 512 channels times ``width`` (a float multiplier; use
    e.g. 0.125 for demos) and :func:`convs_per_stage` convs. A 2x2 max-pool separates
    stages while the spatial size is at least 2 (so 8x8 digits pool 3 times, never below
    1x1); global average pooling feeds the head (Simonyan & Zisserman's three FC layers
    are replaced by one, as in open_lth's cifar_vgg). ``residual = True`` adds a residual
    connection around each pair of same-shape convs after a stage's first conv (G42 2021
    §5 "VGG-38 with residual connections"); it is active only while ``skip`` is true.
    Residual or not, the modules and parameters are the same.
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
        residual: bool,
    ) -> None:
        super().__init__()
        in_channels, height, width_px = image_shape("vgg", input_shape)
        plan = convs_per_stage(depth)
        channels = [scaled_channels("vgg", c, width) for c in STAGE_CHANNELS]
        if not isinstance(residual, bool):
            raise ValueError(f"vgg residual must be true or false; got {residual!r}")
        schedule = NormSchedule(norm, norm_every)
        size = min(height, width_px)
        modules: list[nn.Module] = []
        for stage, (out_channels, convs) in enumerate(zip(channels, plan, strict=True)):
            if stage > 0 and size >= 2:
                modules.append(nn.MaxPool2d(2))
                size //= 2
            modules += stage_modules(schedule, in_channels, out_channels, convs, residual and skip)
            in_channels = out_channels
        self.features = nn.Sequential(*modules)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
