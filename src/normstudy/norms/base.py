"""What every normalizer shares, and how a model places one after a layer.

A normalizer follows a conv or dense layer (before the nonlinearity) and always ends
with a per-channel affine map ``gamma * x_hat + beta``; ``weight`` is gamma and ``bias``
is beta, so freeze policies find them by role whatever the normalizer (Frankle et al.
2020, "Training BatchNorm and only BatchNorm"). Normalizers that change *where* things
happen hook into the layer they follow through :class:`NormedLayer`:
``pre_affine`` transforms the layer's input (PreLayerNorm), ``attach`` reparameterises
the layer (Weight Norm), and ``regularizer`` returns a loss term (RegNorm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

KINDS = ("conv", "dense")


class Normalizer(nn.Module):
    """Base class: per-channel gamma (``weight``) and beta (``bias``).

    ``kind`` is ``"conv"`` for (N, C, H, W) inputs or ``"dense"`` for (N, C).
    Subclasses set ``supports`` to the kinds they can normalise and implement
    :meth:`normalize`, which returns x_hat before the affine map.
    """

    supports: ClassVar[frozenset[str]] = frozenset(KINDS)
    has_affine: ClassVar[bool] = True
    """False for a normalizer without gamma and beta (``weight`` and ``bias`` are None):
    the layer it follows then keeps its own bias, as with ``none`` (:func:`keeps_bias`)."""

    def __init__(self, num_features: int, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown layer kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        self.num_features = num_features
        self.kind = kind
        if self.has_affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def affine(self, x_hat: torch.Tensor) -> torch.Tensor:
        if not self.has_affine:
            return x_hat
        shape = (1, -1) + (1,) * (x_hat.dim() - 2)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.affine(self.normalize(x))

    def pre_affine(self, x: torch.Tensor) -> torch.Tensor:
        """Transform the input of the preceding layer (identity unless overridden)."""
        return x

    def attach(self, layer: nn.Module) -> None:
        """Reparameterise the preceding layer (nothing unless overridden)."""

    def regularizer(self) -> torch.Tensor | None:
        """The loss term of the last forward pass in training mode, or None."""
        return None

    def transient_state(self) -> object:
        """What a forward leaves behind that is neither a parameter nor a buffer (RegNorm's
        last loss term); probes save it and put it back so that they leave no trace."""
        return None

    def restore_transient_state(self, state: object) -> None:
        """Put back what :meth:`transient_state` returned."""

    def extra_repr(self) -> str:
        return f"{self.num_features}, kind={self.kind}"


def keeps_bias(norm: Normalizer | None) -> bool:
    """Whether the layer before ``norm`` keeps its bias: yes unless a beta replaces it."""
    return norm is None or not norm.has_affine


class RunningStatisticsNorm(Normalizer):
    """A normalizer whose evaluation mode uses running estimates of batch statistics,
    updated in training as Batch Norm's (Ioffe & Szegedy 2015, Algorithm 2):
    ``running <- (1 - momentum) * running + momentum * batch``. ``running`` names its
    buffers with their initial value (means start at 0, variances at 1)."""

    running: ClassVar[dict[str, float]] = {}

    def __init__(self, num_features: int, kind: str, *, eps: float, momentum: float) -> None:
        super().__init__(num_features, kind)
        self.eps = eps
        self.momentum = momentum
        for name, initial in self.running.items():
            self.register_buffer(name, torch.full((num_features,), initial))


def has_gamma_beta(module: nn.Module) -> bool:
    """Whether ``module`` is a normalizer with a gamma and a beta (what freeze policies
    and the gamma/beta probes look for)."""
    return isinstance(module, Normalizer) and module.has_affine


NormFactory = Callable[[int, str], "Normalizer | None"]
"""Builds the normalizer that follows a layer: ``factory(num_features, kind)``.
Returns None for "no normalization", in which case the layer keeps its own bias."""


class NormedLayer(nn.Module):
    """A conv or dense layer followed by its normalizer (or nothing).

    Models build every normalised layer through this class so that PreLayerNorm
    and Weight Norm can act on the layer itself, and so that probes find the layers
    in forward order by iterating ``model.modules()``.
    """

    def __init__(self, layer: nn.Module, norm: Normalizer | None) -> None:
        super().__init__()
        self.layer = layer
        self.norm = norm
        if norm is not None:
            norm.attach(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is None:
            return self.layer(x)
        return self.norm(self.layer(self.norm.pre_affine(x)))


def collect_regularizers(model: nn.Module) -> torch.Tensor | None:
    """Sum of the regularizer terms of every normalizer in ``model`` (RegNorm), or None."""
    terms = [
        term
        for module in model.modules()
        if isinstance(module, Normalizer)
        for term in [module.regularizer()]
        if term is not None
    ]
    if not terms:
        return None
    return torch.stack([t.reshape(()) for t in terms]).sum()
