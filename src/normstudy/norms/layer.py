"""Layer Norm: per-example statistics over every non-batch axis."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from normstudy.norms.base import Normalizer
from normstudy.norms.registry import register_norm


@register_norm("layer")
class LayerNorm(Normalizer):
    """Layer Norm (Ba et al. 2016, §3): each example is normalised by the mean and
    (biased) variance of all its summed inputs, (C, H, W) for a conv layer and (C,)
    for a dense one, identically in training and evaluation.

    The affine map is per channel (one gamma and beta per unit of a dense layer, per
    feature map of a conv layer), as for every normalizer here, not per element as in
    ``torch.nn.LayerNorm(elementwise_affine=True)`` over (C, H, W).
    """

    def __init__(self, num_features: int, kind: str, *, eps: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:], eps=self.eps)
