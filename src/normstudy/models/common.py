"""Pieces shared by the model families: normalised layers, input checks, residual stages.

Every conv or dense layer that may be normalised is a :class:`NormedLayer` (layer, then its
normalizer, before the nonlinearity). A layer followed by a normalizer has no bias, since
the normalizer's beta replaces it; a layer without one (or whose normalizer has no beta,
``noisy_none``) keeps its bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.catalog.models import SHORTCUTS
from normstudy.norms.base import Normalizer, NormedLayer, NormFactory, keeps_bias


class NormSchedule:
    """Hands out the normalizers of the layers along depth, in forward order.

    Layer ``i`` (counted from 1 along the main path) gets a normalizer iff
    ``every > 0 and i % every == 0``: ``every = 1`` normalises every layer, ``0`` none,
    ``k`` one layer in k (G42 2021, §6: "a reduced number of batch norm layers, after
    every 2 conv layers, after every 5 conv layers").
    """

    def __init__(self, factory: NormFactory, every: int) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(
                f"norm_every must be an integer >= 0 (0 = no normalizer, 1 = after every "
                f"layer, k = after every k-th layer); got {every!r}"
            )
        self.factory = factory
        self.every = every
        self.index = 0

    def next_norm(self, channels: int, kind: str) -> Normalizer | None:
        """The normalizer of the next layer along depth (None if it gets none)."""
        self.index += 1
        if self.every and self.index % self.every == 0:
            return self.factory(channels, kind)
        return None

    def norm_like(self, reference: NormedLayer, channels: int, kind: str) -> Normalizer | None:
        """A normalizer iff ``reference`` has one; for layers off the main path."""
        return None if reference.norm is None else self.factory(channels, kind)


def normed_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: Normalizer | None
) -> NormedLayer:
    """A same-padded conv followed by ``norm``; it has a bias unless ``norm`` has a beta."""
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=keeps_bias(norm),
    )
    return NormedLayer(conv, norm)


def normed_dense(in_features: int, out_features: int, norm: Normalizer | None) -> NormedLayer:
    """A dense layer followed by ``norm``; it has a bias unless ``norm`` has a beta."""
    return NormedLayer(nn.Linear(in_features, out_features, bias=keeps_bias(norm)), norm)


def image_shape(model: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W); a model that needs images fails on other shapes."""
    if len(input_shape) != 3:
        raise ValueError(
            f"{model} needs image inputs with input_shape (C, H, W); got {tuple(input_shape)} "
            f"(use mlp for vector inputs)"
        )
    channels, height, width = (int(s) for s in input_shape)
    return channels, height, width


def positive_int(model: str, what: str, value: object, rule: str) -> int:
    """``value`` if it is an integer >= 1; otherwise an error stating ``rule``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model} {what} must be {rule}; got {value!r}")
    return value


def scaled_channels(model: str, base: int, width: object) -> int:
    """``base * width`` channels, rounded, for a positive width multiplier."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"{model} width must be a positive multiplier; got {width!r}")
    channels = round(base * width)
    if channels < 1:
        raise ValueError(
            f"{model} width {width!r} leaves {base} * {width!r} < 1 channel; "
            f"width must be >= {1 / base:g}"
        )
    return channels


class ZeroPadShortcut(nn.Module):
    """He et al. 2016 §3.3 option A: strided identity, new channels padded with zeros."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"a zero-padding shortcut cannot shrink {in_channels} to {out_channels} channels"
            )
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


class ProjectionShortcut(nn.Module):
    """He et al. 2016 §3.3 option B: strided 1x1 conv followed by a normalizer.

    It lies beside the main path, so :func:`depth_layers` leaves it out.
    """

    def __init__(self, projection: NormedLayer) -> None:
        super().__init__()
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


class BasicBlock(nn.Module):
    """Two 3x3 convs, each followed by its normalizer, around a residual connection.

    Post-norm ordering, conv -> norm -> ReLU, as in He et al. 2016 and open_lth's
    cifar_resnet: ``relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))``.
    Without ``skip`` the block is plain (He et al. 2016 §4.1 "plain networks"): no
    shortcut module at all, so a projection shortcut's parameters disappear with it.
    The shortcut is registered and run after ``conv2`` (forward order = module order).
    """

    def __init__(
        self,
        schedule: NormSchedule,
        in_channels: int,
        out_channels: int,
        stride: int,
        skip: bool,
        shortcut: str,
    ) -> None:
        super().__init__()
        self.conv1 = normed_conv(
            in_channels, out_channels, 3, stride, schedule.next_norm(out_channels, "conv")
        )
        self.conv2 = normed_conv(
            out_channels, out_channels, 3, 1, schedule.next_norm(out_channels, "conv")
        )
        self.shortcut = self._shortcut(schedule, in_channels, out_channels, stride, skip, shortcut)

    def _shortcut(
        self,
        schedule: NormSchedule,
        in_channels: int,
        out_channels: int,
        stride: int,
        skip: bool,
        shortcut: str,
    ) -> nn.Module | None:
        if not skip:
            return None
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        if shortcut == "A":
            return ZeroPadShortcut(in_channels, out_channels, stride)
        norm = schedule.norm_like(self.conv2, out_channels, "conv")
        return ProjectionShortcut(normed_conv(in_channels, out_channels, 1, stride, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


def residual_stages(
    schedule: NormSchedule,
    in_channels: int,
    stage_channels: Sequence[int],
    blocks_per_stage: int,
    skip: bool,
    shortcut: str,
) -> nn.Sequential:
    """Stages of :class:`BasicBlock`; every stage after the first halves the spatial size."""
    blocks = []
    for stage, channels in enumerate(stage_channels):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            blocks.append(BasicBlock(schedule, in_channels, channels, stride, skip, shortcut))
            in_channels = channels
    return nn.Sequential(*blocks)


def check_shortcut(model: str, shortcut: object) -> str:
    """``shortcut`` if it names a valid option ("A" or "B")."""
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"{model} shortcut {shortcut!r} is not valid; valid shortcuts: "
            f"A (strided identity + zero channels), B (1x1 conv + norm)"
        )
    return str(shortcut)


def depth_layers(model: nn.Module) -> list[NormedLayer]:
    """The model's normalisable layers along the main path, in forward order.

    Projection shortcuts (beside the main path) are left out; ``model.modules()`` still
    lists them.
    """
    beside = {
        id(layer)
        for module in model.modules()
        if isinstance(module, ProjectionShortcut)
        for layer in module.modules()
    }
    return [m for m in model.modules() if isinstance(m, NormedLayer) and id(m) not in beside]


def count_normalizers(model: nn.Module) -> int:
    """Number of normalizer modules in ``model``."""
    return sum(isinstance(m, Normalizer) for m in model.modules())
