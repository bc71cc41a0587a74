"""Group Norm: per-example statistics over groups of channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from normstudy.norms.base import Normalizer
from normstudy.norms.registry import register_norm


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_groups(groups: int, num_features: int) -> int:
    """``groups`` (a positive int, checked by the catalog) if it divides ``num_features``:
    a check that needs the layer's shape, so it runs when the model is built."""
    if num_features % groups:
        valid = ", ".join(map(str, divisors(num_features)))
        raise ValueError(
            f"group norm cannot split {num_features} channels into groups={groups} "
            f"({num_features} is not divisible by {groups}); "
            f"valid group counts for {num_features} channels: {valid}"
        )
    return int(groups)


@register_norm("group")
class GroupNorm(Normalizer):
    """Group Norm (Wu & He 2018, §3.1, eq. 7): each example's channels are split into
    ``groups`` contiguous groups, each normalised by its own mean and (biased)
    variance over (C/G, H, W), identically in training and evaluation; as
    ``torch.nn.GroupNorm``. ``groups=1`` is Layer Norm, ``groups=C`` Instance Norm.

    On a dense layer each group needs at least two units (one unit per group would
    normalise single numbers to zero). The default of 8 groups is ours (Wu & He use
    32, §4.1) so that the narrow layers of small models divide evenly; every layer's
    channel count must be divisible by it.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float, groups: int) -> None:
        super().__init__(num_features, kind)
        self.eps = eps
        self.groups = check_groups(groups, num_features)
        if kind == "dense" and num_features == self.groups:
            raise ValueError(
                f"group norm with groups={self.groups} on a dense layer of {num_features} "
                "units normalises single numbers (one unit per group, no spatial axes); "
                "use fewer groups"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.groups, eps=self.eps)
