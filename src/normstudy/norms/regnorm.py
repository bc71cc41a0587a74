"""RegNorm and PreRegNorm: layer normalisation plus a loss on the batch mean of x_hat."""

from __future__ import annotations

import torch

from normstudy.norms.common import batch_axes
from normstudy.norms.layer import LayerNorm
from normstudy.norms.prelayer import PreLayerNorm
from normstudy.norms.registry import register_norm


def batch_mean_penalty(
    x_hat: torch.Tensor, units: str = "neuron", reduce: str = "mean"
) -> torch.Tensor:
    """The RegNorm term of normalised activations ``x_hat``: squared batch means, reduced.

    ``units="neuron"``: one batch mean per neuron, i.e. per (channel, position) of a conv
    layer (M = W*H*C of them, "Is Batch Norm unique?" appendix B), taken over the batch
    axis only; ``units="channel"``: one per channel, over the batch and spatial axes.
    ``reduce="sum"`` adds the squared means up, ``"mean"`` averages them. Either way the
    term is zero if and only if every such batch mean is zero.
    """
    axes = (0,) if units == "neuron" else batch_axes(x_hat)
    squared = x_hat.mean(axes).pow(2)
    return squared.sum() if reduce == "sum" else squared.mean()


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
    """Mixin for a Normalizer: records :func:`batch_mean_penalty` of x_hat (before gamma
    and beta) at every training forward and returns it from :meth:`regularizer`; the
    options and constructor RegNorm and PreRegNorm share."""

    _last: _LastTerm
    reg_units: str
    reg_reduce: str

    def __init__(
        self, num_features: int, kind: str, *, eps: float, reg_units: str, reg_reduce: str
    ) -> None:
        super().__init__(num_features, kind, eps=eps)
        self.reg_units = reg_units
        self.reg_reduce = reg_reduce
        self._last = _LastTerm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_hat = self.normalize(x)
        self._last.term = (
            batch_mean_penalty(x_hat, self.reg_units, self.reg_reduce) if self.training else None
        )
        return self.affine(x_hat)

    def regularizer(self) -> torch.Tensor | None:
        """The term of the last forward if that forward ran in training mode and the
        module is still in training mode, else None."""
        return self._last.term if self.training else None

    def transient_state(self) -> torch.Tensor | None:
        return self._last.term

    def restore_transient_state(self, state: object) -> None:
        self._last.term = state  # type: ignore[assignment]


@register_norm("regnorm")
class RegNorm(BatchMeanRegularized, LayerNorm):
    """RegNorm ("Is Batch Norm unique?" 2020, §3.2 and appendix B): Layer Norm, plus a loss
    term on the normalised activations whose unique minimum is a zero batch mean.

    Equation 3 was lost from the text we worked from (docs/science.md); appendix B keeps its
    frame: the term is a function of the batch means of the normalised inputs, with "M the
    number of neurons at layer l (W*H*C)", minimised only "when the means of all the inputs
    [across] the batch are 0". We read it as ``R_l = sum_{i=1..M} (mean_b x_hat_{b,i})**2``:
    one batch mean per neuron (per channel and position of a conv layer), squared and summed
    over the M neurons, with x_hat the Layer Norm output before gamma and beta. It is
    computed after normalisation, so it does not depend on the activation scale (§3.2). The
    training loop adds ``lambda * sum_l R_l`` to the loss (§3.2: "the sum is over network
    layers, and lambda is a regularization strength"), lambda being ``reg_strength``
    (:func:`normstudy.norms.collect_regularizers`).

    The text leaves open what lambda is (no value is given) and, with it, how the term
    scales with the layer, so two options (:func:`batch_mean_penalty`): ``reg_units``
    ``"neuron"`` (the paper's M = W*H*C; default) or ``"channel"`` (one batch mean per
    feature map, over batch and positions, as Batch Norm's statistics), and
    ``reg_reduce`` ``"sum"`` (the paper's literal sum over the M neurons, with which
    ``reg_strength`` is the paper's lambda) or ``"mean"`` (default: the sum divided by M).
    The default is ours: the sum grows with W*H*C (at init it is about 770 times the mean
    on the demo's WRN-8 and 21,000 times on a WRN-26-2 on CIFAR), so no one lambda suits
    both, and with ``reg_strength`` 0.1 the summed term stops a digits WRN-8 from
    learning at all (chance accuracy; 95% at 0.001), where the mean trains. ``channel``
    with ``mean`` is this package's term before behaviour version 2.
    """


@register_norm("preregnorm")
class PreRegNorm(BatchMeanRegularized, PreLayerNorm):
    """PreRegNorm ("Is Batch Norm unique?" 2020, table 3 footnote): "RegNorm with layer
    mean subtraction before the Affine operation".

    It is to RegNorm what PreLayerNorm is to Layer Norm: the layer mean of the input is
    subtracted before the affine op and the output divided by its layer root mean
    square (:class:`~normstudy.norms.prelayer.PreLayerNorm`), and the RegNorm term
    (:func:`batch_mean_penalty` of x_hat, same options and defaults as :class:`RegNorm`)
    is recorded in training mode.
    """
