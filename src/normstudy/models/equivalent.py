"""The "equivalent point" of a Batch Norm network: a network without normalization that
computes the same function (Morwani 2020, "Understanding Batch Normalization", §3).

Morwani writes a BN layer as ``gamma * (w^T x + b - mu) / sigma + beta`` and defines
``w_eq = gamma / sigma * w`` and ``b_eq = gamma / sigma * (b - mu) + beta``, so that it is
``w_eq^T x + b_eq``. His §3 experiments (a 10-layer MLP on 10000 MNIST examples, batch
gradient descent with lr = 1) start "the non-BN network initialized at the equivalent
point of the batch norm network", so the two runs begin at the same function and differ
only by how gradient descent moves them. ``init_from: bn_equivalent`` does this: the
cell's ``norm: none`` network starts at the equivalent point of the ``norm: batch``
network the same seed would build (:func:`fold_batch_norm`).

``mu`` and ``sigma`` are the training-mode statistics of each BN layer on the full
training set, the batch Morwani's full-batch gradient descent sees: per unit, the mean
and the *biased* variance with BN's ``eps`` inside the root, as training-mode Batch Norm
computes them (:class:`~normstudy.norms.batch.BatchNorm`). All layers' statistics come
from one forward pass, so each layer's are those of its input as the BN network's
earlier (training-mode) layers produce it. With minibatches the two networks agree at
init only on average, since BN then normalises each batch by its own statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from normstudy.catalog import INIT_FROM
from normstudy.norms.base import NormedLayer
from normstudy.norms.batch import BatchNorm
from normstudy.registry import Registry

INITIALIZATIONS: Registry[Callable[..., None]] = Registry(INIT_FROM)
"""``init_from`` value -> the function that sets a built model's starting point; the
models each is defined for are :data:`normstudy.catalog.INIT_FROM`."""


def normed_layers(model: nn.Module) -> list[NormedLayer]:
    return [module for module in model.modules() if isinstance(module, NormedLayer)]


@torch.no_grad()
def batch_statistics(bn_model: nn.Module, x: torch.Tensor) -> list[tuple | None]:
    """(mean, sigma) of every NormedLayer's BN input on the batch ``x``, in float64, in
    forward order (None for a layer without Batch Norm)."""
    model = copy.deepcopy(bn_model).double().train()  # the caller's running stats stay
    stats: list[tuple | None] = []
    hooks = []
    for block in normed_layers(model):
        if block.norm is None:
            stats.append(None)
            continue
        if type(block.norm) is not BatchNorm:
            raise TypeError(f"the equivalent point folds Batch Norm only, not {block.norm}")
        index = len(stats)
        stats.append(())

        def record(module, inputs, z, index=index, eps=block.norm.eps):
            if z.dim() != 2:
                raise ValueError("the equivalent point is defined for dense layers only")
            mean = z.mean(0)
            sigma = (z.var(0, unbiased=False) + eps).sqrt()
            stats[index] = (mean, sigma)

        hooks.append(block.layer.register_forward_hook(record))
    try:
        model(x.double())
    finally:
        for hook in hooks:
            hook.remove()
    return stats


@torch.no_grad()
def fold_batch_norm(bn_model: nn.Module, plain_model: nn.Module, x: torch.Tensor) -> None:
    """Set ``plain_model`` (``norm: none``) to the equivalent point of ``bn_model`` (the
    same architecture with Batch Norm) on the full batch ``x``: Morwani 2020, §3,
    ``w_eq = gamma / sigma * w``, ``b_eq = gamma / sigma * (b - mu) + beta``.

    Afterwards ``plain_model(x)`` equals ``bn_model.train()(x)`` up to rounding. Layers
    without a normalizer (``norm_every`` > 1) and the head are copied as they are.
    """
    bn_blocks, plain_blocks = normed_layers(bn_model), normed_layers(plain_model)
    if len(bn_blocks) != len(plain_blocks):
        raise ValueError("the two models differ in their normalised layers")
    for bn_block, plain_block, stats in zip(
        bn_blocks, plain_blocks, batch_statistics(bn_model, x), strict=True
    ):
        if plain_block.norm is not None:
            raise ValueError("the equivalent point is a network without normalizers")
        w = bn_block.layer.weight.double()
        b = bn_block.layer.bias
        b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device) if b is None else b
        if stats is None:
            w_eq, b_eq = w, b.double()
        else:
            mean, sigma = stats
            scale = bn_block.norm.weight.double() / sigma
            w_eq = scale.view(-1, *([1] * (w.dim() - 1))) * w
            b_eq = scale * (b.double() - mean) + bn_block.norm.bias.double()
        target = plain_block.layer
        target.weight.copy_(w_eq.to(target.weight.dtype))
        target.bias.copy_(b_eq.to(target.bias.dtype))
    plain_model.head.load_state_dict(bn_model.head.state_dict())


@INITIALIZATIONS.register("bn_equivalent")
def bn_equivalent(
    model: nn.Module, build_bn_twin: Callable[[], nn.Module], x: torch.Tensor
) -> None:
    """``init_from: bn_equivalent``: ``model`` starts at the equivalent point of the Batch
    Norm network ``build_bn_twin()`` (built with the cell's seed) on the training set ``x``."""
    fold_batch_norm(build_bn_twin().to(x.device), model, x)
