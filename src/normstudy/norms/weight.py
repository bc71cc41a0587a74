"""Weight Norm: the preceding layer's weight is reparameterised, its output is not normalised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from normstudy.norms.base import Normalizer
from normstudy.norms.registry import register_norm


class UnitNormRows(nn.Module):
    """Parametrization ``v -> v / ||v||`` per output unit (a dense row, a conv filter).

    ``||v||`` is floored at ``eps`` (as in ``F.normalize``) so that a zero row stays zero.
    """

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(v.reshape(v.shape[0], -1), dim=1, eps=self.eps).reshape(v.shape)


@register_norm("weight")
class WeightNorm(Normalizer):
    """Weight Normalization (Salimans & Kingma 2016, §2, eq. 2): ``w = g v / ||v||``.

    :meth:`attach` registers :class:`UnitNormRows` on the preceding layer's weight with
    ``torch.nn.utils.parametrize``, so the layer computes ``(v / ||v||) . x`` with the
    direction ``v`` as its trainable parameter (``layer.parametrizations.weight.original``,
    role ``weight``). This normalizer's gamma is Salimans' per-unit magnitude ``g`` and
    its beta the bias, so the output is ``gamma * (v / ||v||) . x + beta`` and freeze
    policies treat ``g`` like every other normalizer's gamma. We do not use
    ``torch.nn.utils.parametrizations.weight_norm``, whose own magnitude parameter
    would duplicate gamma. :meth:`normalize` is the identity; Salimans' data-dependent
    initialisation (§3) is not done (gamma is initialised by the model like any other).
    """

    def __init__(self, num_features: int, kind: str, *, eps: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def attach(self, layer: nn.Module) -> None:
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(
                f"weight norm needs a layer with a `weight` tensor; got {type(layer).__name__}"
            )
        if weight.shape[0] != self.num_features:
            raise ValueError(
                f"weight norm built for {self.num_features} channels cannot attach to "
                f"{type(layer).__name__} with {weight.shape[0]} output channels"
            )
        parametrize.register_parametrization(layer, "weight", UnitNormRows(self.eps))
