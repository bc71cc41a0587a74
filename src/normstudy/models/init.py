"""Initialization of every model, as in Frankle, Schwab & Morcos 2020.

Frankle et al. 2020 §3 (and G42 2021 §5, which follows their schedule): "He normal"
initialization (He et al. 2015) for all weights, normalizer gamma ~ U[0, 1] and beta = 0.
Their code (open_lth ``models/initializers.py``: ``kaiming_normal``, and
``bn_initializers.py``: ``uniform``) calls ``torch.nn.init.kaiming_normal_`` with its
defaults, i.e. ``mode="fan_in"`` and gain sqrt(2) (leaky ReLU with slope 0, the same gain
as ReLU): std = sqrt(2 / fan_in), fan_in = in_channels * kernel area. We write
``mode="fan_in", nonlinearity="relu"`` explicitly; it draws the same distribution.
The head is initialised the same way. Layer biases (present only where no normalizer
follows) start at zero. Recurrent layers (``nn.LSTM``) keep PyTorch's default
U(-1/sqrt(hidden), 1/sqrt(hidden)): He normal is defined for ReLU layers, not for
the gates of an LSTM.

Everything draws from torch's global RNG; the caller seeds it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from normstudy.norms.base import Normalizer

GAMMA_INITS = ("ones", "uniform")

HE_NORMAL_MODE = "fan_in"
HE_NORMAL_NONLINEARITY = "relu"


def check_gamma_init(gamma_init: object) -> str:
    """``gamma_init`` if it is valid; otherwise an error listing the valid ones."""
    if gamma_init not in GAMMA_INITS:
        raise ValueError(
            f"unknown gamma_init {gamma_init!r}; valid gamma_inits: {', '.join(GAMMA_INITS)} "
            f"(uniform = U[0, 1], Frankle et al. 2020)"
        )
    return str(gamma_init)


def he_normal_weight(shape: torch.Size) -> torch.Tensor:
    """A weight of ``shape`` drawn from He normal: N(0, 2 / fan_in)."""
    weight = torch.empty(shape)
    return nn.init.kaiming_normal_(weight, mode=HE_NORMAL_MODE, nonlinearity=HE_NORMAL_NONLINEARITY)


@torch.no_grad()
def initialize_layer(layer: nn.Conv2d | nn.Linear) -> None:
    """He-normal weight and zero bias.

    A weight reparameterised through ``torch.nn.utils.parametrize`` (Weight Norm) has its
    raw tensor ``parametrizations.weight.original`` (Weight Norm's direction v) drawn He
    normal; with several raw tensors (``original0``, ``original1``, ...), a He-normal
    weight is assigned and the parametrization's ``right_inverse`` sets them.
    """
    if not parametrize.is_parametrized(layer, "weight"):
        layer.weight.copy_(he_normal_weight(layer.weight.shape))
    elif hasattr(layer.parametrizations.weight, "original"):
        original = layer.parametrizations.weight.original
        original.copy_(he_normal_weight(original.shape))
    else:
        layer.weight = he_normal_weight(layer.weight.shape).to(layer.weight)
    if layer.bias is not None:
        layer.bias.zero_()


@torch.no_grad()
def initialize_normalizer(norm: Normalizer, gamma_init: str) -> None:
    """gamma = 1 or U[0, 1] (Frankle et al. 2020 §3), beta = 0."""
    if gamma_init == "uniform":
        norm.weight.uniform_(0.0, 1.0)
    else:
        norm.weight.fill_(1.0)
    norm.bias.zero_()


def initialize(model: nn.Module, gamma_init: str = "ones") -> nn.Module:
    """Initialise every conv/dense layer, the head and every normalizer of ``model``."""
    gamma_init = check_gamma_init(gamma_init)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            initialize_layer(module)
        elif isinstance(module, Normalizer) and module.has_affine:
            initialize_normalizer(module, gamma_init)
    return model
