"""RegNorm and PreRegNorm: layer normalisation plus a loss on the batch mean of x_hat."""

from __future__ import annotations

import torch

from normstudy.norms.common import batch_axes
from normstudy.norms.layer import LayerNorm
from normstudy.norms.prelayer import PreLayerNorm
from normstudy.norms.registry import NORMALIZERS


def squared_batch_mean(x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the squared per-channel batch mean of ``x_hat``.

    The batch mean is taken over the batch and spatial axes; the result is zero if
    and only if every channel has zero batch mean.
    """
    return x_hat.mean(batch_axes(x_hat)).pow(2).mean()


class _LastTerm:
    """Holds the regularizer of the last training forward.

    A term belongs to one forward graph, so a copy (``copy.deepcopy``, pickling)
    starts empty instead of trying to copy the graph.
    """

    __slots__ = ("term",)

    def __init__(self) -> None:
        self.term: torch.Tensor | None = None

    def __reduce__(self) -> tuple[type, tuple]:
        return (_LastTerm, ())


class BatchMeanRegularized:
    """Mixin for a Normalizer: records :func:`squared_batch_mean` of x_hat (before gamma
    and beta) at every training forward and returns it from :meth:`regularizer`.
    Subclasses set ``self._last = _LastTerm()`` in ``__init__``."""

    _last: _LastTerm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_hat = self.normalize(x)
        self._last.term = squared_batch_mean(x_hat) if self.training else None
        return self.affine(x_hat)

    def regularizer(self) -> torch.Tensor | None:
        """The term of the last forward if that forward ran in training mode and the
        module is still in training mode, else None."""
        return self._last.term if self.training else None


@NORMALIZERS.register("regnorm")
class RegNorm(BatchMeanRegularized, LayerNorm):
    """RegNorm ("Is Batch Norm unique?" 2020, §3.2): Layer Norm, plus a loss term on the
    normalised activations whose unique minimum is a zero per-channel batch mean.

    The paper's equation 3 was lost from our copy of the text, so the term is ours:
    ``R = mean over channels of (batch mean of x_hat)**2``, with x_hat the Layer Norm
    output before gamma and beta and the batch mean over the batch and spatial axes.
    It is computed after normalisation, so it does not depend on the activation
    scale, and it is minimal (zero) exactly when every channel's batch mean is zero,
    the property the paper requires (its appendix B). Once it is minimised the layer
    behaves like BMLV. The training loop multiplies the sum of these terms over
    layers (:func:`normstudy.norms.collect_regularizers`) by the strength lambda.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float = 1e-5) -> None:
        super().__init__(num_features, kind, eps=eps)
        self._last = _LastTerm()


@NORMALIZERS.register("preregnorm")
class PreRegNorm(BatchMeanRegularized, PreLayerNorm):
    """PreRegNorm ("Is Batch Norm unique?" 2020, table 3 footnote): "RegNorm with layer
    mean subtraction before the Affine operation".

    It is to RegNorm what PreLayerNorm is to Layer Norm: the layer mean of the input is
    subtracted before the affine op and the output divided by its layer root mean
    square (:class:`~normstudy.norms.prelayer.PreLayerNorm`), and the RegNorm term
    (:func:`squared_batch_mean` of x_hat) is recorded in training mode.
    """

    def __init__(self, num_features: int, kind: str, *, eps: float = 1e-5) -> None:
        super().__init__(num_features, kind, eps=eps)
        self._last = _LastTerm()
