"""Instance Norm: per-example, per-channel statistics over the spatial axes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from normstudy.norms.base import Normalizer
from normstudy.norms.registry import register_norm


@register_norm("instance")
class InstanceNorm(Normalizer):
    """Instance Norm (Ulyanov et al. 2016, eq. 2): each feature map of each example is
    normalised by its own spatial mean and (biased) variance, identically in training
    and evaluation; as ``torch.nn.InstanceNorm2d(affine=True)`` (which keeps no
    running statistics by default).

    Conv layers only, with feature maps larger than 1x1: a dense unit, or a 1x1 map,
    would be a single number, normalised to zero.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x[0, 0].numel() < 2:
            raise ValueError(
                f"instance norm needs feature maps of more than one position; got input "
                f"{tuple(x.shape)}, whose maps would all normalise to zero"
            )
        return F.instance_norm(x, eps=self.eps)
