"""Wide residual networks (Zagoruyko & Komodakis 2016), as in "Is Batch Norm unique?"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.models.common import (
    NormSchedule,
    check_shortcut,
    image_shape,
    normed_conv,
    positive_int,
    residual_stages,
)
from normstudy.models.registry import register_model
from normstudy.norms.base import NormFactory

STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 32, 64)


def blocks_per_stage(depth: object) -> int:
    """n for depth 6n + 2 or 6n + 4: both name the network with n blocks per stage.

    6n + 2 counts the stem, the 6n block convs and the head ("Is Batch Norm unique?" §4.1,
    WideResnet-26: n = 4); Zagoruyko & Komodakis 2016 count 6n + 4 (WRN-28-10: n = 4).
    So WRN-26 and WRN-28 are the same network.
    """
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < 8
        or (depth - 2) % 6 not in (0, 2)
    ):
        raise ValueError(
            f"wrn depth must be 6n+2 (stem + 6n convs + head, e.g. 26) or 6n+4 "
            f"(Zagoruyko & Komodakis' count, e.g. 28), n >= 1 blocks per stage; got {depth!r}"
        )
    return (depth - 2) // 6


@register_model("wrn")
class WideResNet(nn.Module):
    """WRN-d-k: conv3x3 stem (16 channels), three stages of n basic blocks with 16k, 32k
    and 64k channels (k = ``width``), stride 2 at stages 2 and 3, global average pool, head.

    Zagoruyko & Komodakis 2016 use pre-activation blocks (BN -> ReLU -> conv). Here every
    normalizer follows its layer (conv -> norm -> ReLU), as for all models of the study,
    so that each normalizer sees the output of one layer and PreLayerNorm / Weight Norm can
    act on that layer; the block is then :class:`~normstudy.models.common.BasicBlock`,
    with the same widths and depth rule as WRN, and no dropout. "Is Batch Norm unique?"
    uses WRN-26-2 for its analysis (mostly with ``skip = False``) and WRN-26-10 in its
    Table 3. ``shortcut`` where the shape changes: "B" (default) 1x1 conv + norm, the
    post-norm form of WRN's 1x1 conv shortcut; "A" zero-padded strided identity.
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
        shortcut: str,
    ) -> None:
        super().__init__()
        in_channels, _, _ = image_shape("wrn", input_shape)
        n = blocks_per_stage(depth)
        k = positive_int("wrn", "width", width, "the integer widening factor k >= 1")
        channels = [c * k for c in STAGE_CHANNELS]
        shortcut = check_shortcut("wrn", shortcut)
        schedule = NormSchedule(norm, norm_every)
        self.stem = normed_conv(
            in_channels, STEM_CHANNELS, 3, 1, schedule.next_norm(STEM_CHANNELS, "conv")
        )
        self.blocks = residual_stages(schedule, STEM_CHANNELS, channels, n, skip, shortcut)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))
