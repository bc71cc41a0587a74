"""PreLayerNorm: Layer Norm's mean subtraction moved before the affine op."""

from __future__ import annotations

import torch

from normstudy.norms.base import Normalizer
from normstudy.norms.common import layer_axes, mean_square
from normstudy.norms.registry import register_norm


@register_norm("prelayer")
class PreLayerNorm(Normalizer):
    """PreLayerNorm ("Is Batch Norm unique?" 2020, §3.1 and table 1).

    "The normalizer subtracts the layer's mean before the Affine operation and divides
    [by] the layer's standard-deviation before the nonlinearity". Exactly:

    - :meth:`pre_affine` maps the layer's input ``x`` to ``x - mean(x)``, the mean
      taken per example over all non-batch axes ((C_in, H, W) for a conv, (C_in,)
      for a dense layer);
    - the layer computes ``y = W(x - mean(x))`` (its bias, if any, is added after);
    - :meth:`normalize` divides ``y`` by ``sqrt(mean(y**2) + eps)``, the mean taken per
      example over (C, H, W) or (C,). No mean is subtracted there: the "layer std" is
      the root mean square of ``y`` about zero, the mean having been removed before the
      affine op (the same convention as BMLV and LMBV, see
      :mod:`normstudy.norms.variants`);
    - then gamma and beta.

    Training and evaluation behave identically.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps

    def pre_affine(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(layer_axes(x), keepdim=True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(mean_square(x, layer_axes(x)) + self.eps)
