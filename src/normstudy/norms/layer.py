"""Layer Norm: per-example statistics over every non-batch axis."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from normstudy.norms.base import Normalizer
from normstudy.norms.common import check_eps
from normstudy.norms.registry import NORMALIZERS


@NORMALIZERS.register("layer")
class LayerNorm(Normalizer):
    """Layer Norm (Ba et al. 2016, §3): each example is normalised by the mean and
    (biased) variance of all its summed inputs, (C, H, W) for a conv layer and (C,)
    for a dense one, identically in training and evaluation.

    The affine map is per channel (one gamma and beta per unit of a dense layer, per
    feature map of a conv layer), as for every normalizer here, not per element as in
    ``torch.nn.LayerNorm(elementwise_affine=True)`` over (C, H, W).
    """

    options = {"eps": 1e-5}

    def __init__(self, num_features: int, kind: str, *, eps: float = 1e-5) -> None:
        super().__init__(num_features, kind)
        self.eps = check_eps(eps)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:], eps=self.eps)
