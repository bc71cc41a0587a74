"""Parameter roles and freeze policies.

Every parameter gets a role by what it does, not by its module class, so that
Layer Norm's gamma is as much a normalizer parameter as Batch Norm's:

- ``norm_gamma`` / ``norm_beta``: the per-channel scale and shift of a normalizer;
- ``head``: the final classifier (``model.head``);
- ``weight``: every other parameter with two or more dimensions (conv, dense,
  embedding and recurrent matrices, Weight Norm directions);
- ``bias``: every other one-dimensional parameter;
- ``random_subset``: the entries of weights that the ``random`` policy trains
  (:class:`RandomEntries`); the rest of those weights keeps the role ``weight``.

A freeze policy names the roles that train. ``norm`` is Frankle et al. (2020)'s
"BatchNorm only" (all weights stay at their random init, only gamma and beta train);
``head`` is their random-features baseline; ``norm+head`` their BN + output layer;
``random`` their control of as many randomly chosen weights as BN-only trains
(:func:`select_random_entries`).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.nn.utils import parametrize

from normstudy.catalog import FREEZE_POLICIES, PARAMETER_ROLES
from normstudy.norms.base import NormedLayer, has_gamma_beta

ROLES = tuple(PARAMETER_ROLES)

ENTRIES_PER_CHANNEL = 2
"""Entries the ``random`` policy trains per output channel: as many as gamma and beta."""


class RandomEntries(nn.Module):
    """Parametrization of a weight: the frozen original with ``values`` scattered in.

    ``index`` (a buffer, so checkpoints keep it) holds the flat positions of the chosen
    entries and ``values`` (a parameter, the only one that trains) their values. The
    original stays a parameter outside the optimizer, so no weight decay or momentum
    ever touches the frozen entries: they stay bitwise at their init, which a gradient
    mask would not guarantee (weight decay moves an entry whose gradient is zero).
    """

    def __init__(self, weight: torch.Tensor, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index)
        self.values = nn.Parameter(weight.detach().flatten()[index].clone())

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original.flatten().index_put((self.index,), self.values).reshape(original.shape)


def select_random_entries(model: nn.Module, generator: torch.Generator | None = None) -> int:
    """Reparameterise ``model`` so that only random entries of its weights can train.

    Frankle, Schwab & Morcos 2020, "Training BatchNorm and only BatchNorm", §4-5: to
    tell "gamma and beta are special" from "any few parameters would do", they train
    "two random parameters per channel" instead of gamma and beta. So every weight
    layer followed by a normalizer with gamma and beta gets :data:`ENTRIES_PER_CHANNEL`
    distinct entries per output channel (conv filter, dense row), chosen uniformly
    from that channel's fan-in by ``generator`` (torch's global RNG if None), and
    nothing else of it trains. That is exactly BN-only's count: a normalizer has one
    gamma and one beta per output channel of the layer it follows. A layer without a
    normalizer (``norm_every`` > 1, ``norm: none``) gets no entries, as BN-only trains
    nothing there; a normalizer that follows no weight layer (the LSTM's state norm)
    would break the match, so it fails, as do weights that are already reparameterised
    (Weight Norm's direction). Returns the number of entries chosen.
    """
    chosen = 0
    for module in model.modules():
        if not isinstance(module, NormedLayer) or not has_gamma_beta(module.norm):
            continue
        layer = module.layer
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(
                f"freeze 'random' needs plain layer weights, but {type(layer).__name__}'s "
                f"weight is reparameterised (by norm {type(module.norm).__name__})"
            )
        weight = layer.weight
        channels, fan_in = weight.shape[0], weight[0].numel()
        if channels != module.norm.num_features or fan_in < ENTRIES_PER_CHANNEL:
            raise ValueError(
                f"freeze 'random' needs {ENTRIES_PER_CHANNEL} weights per channel of each "
                f"normalised layer; {type(layer).__name__} has shape {tuple(weight.shape)}"
            )
        # Drawn on the CPU so the choice is the same on every device.
        picks = torch.multinomial(
            torch.ones(channels, fan_in), ENTRIES_PER_CHANNEL, generator=generator
        )
        index = (picks + fan_in * torch.arange(channels).unsqueeze(1)).flatten()
        parametrize.register_parametrization(
            layer, "weight", RandomEntries(weight, index.to(weight.device))
        )
        chosen += index.numel()
    gamma_beta = sum(
        module.weight.numel() + module.bias.numel()
        for module in model.modules()
        if has_gamma_beta(module)
    )
    if chosen != gamma_beta:
        raise ValueError(
            f"freeze 'random' would train {chosen} weights but BN-only trains {gamma_beta} "
            f"gamma and beta entries: some normalizer of {type(model).__name__} follows no "
            f"weight layer"
        )
    return chosen


def overlapping_counts(model: nn.Module) -> dict[int, int]:
    """id of an original weight -> how many of its entries :class:`RandomEntries` replaces
    (counted as ``random_subset``, so not again as ``weight``)."""
    counts = {}
    for module in model.modules():
        if isinstance(module, parametrize.ParametrizationList):
            for step in module:
                if isinstance(step, RandomEntries):
                    counts[id(module.original)] = step.values.numel()
    return counts


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """Role of every parameter of ``model``, keyed by its qualified name."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise TypeError(f"{type(model).__name__} has no `head` module (its final classifier)")
    head_ids = {id(p) for p in head.parameters()}
    norm_roles: dict[int, str] = {}
    for module in model.modules():
        if has_gamma_beta(module):
            norm_roles[id(module.weight)] = "norm_gamma"
            norm_roles[id(module.bias)] = "norm_beta"
        elif isinstance(module, RandomEntries):
            norm_roles[id(module.values)] = "random_subset"
    roles = {}
    for name, param in model.named_parameters():
        if id(param) in head_ids:
            roles[name] = "head"
        elif id(param) in norm_roles:
            roles[name] = norm_roles[id(param)]
        else:
            roles[name] = "weight" if param.dim() >= 2 else "bias"
    return roles


def apply_freeze_policy(
    model: nn.Module, policy: str, generator: torch.Generator | None = None
) -> list[nn.Parameter]:
    """Set ``requires_grad`` by role and return the trainable parameters, in order.

    Frozen parameters must never enter the optimizer (weight decay and momentum
    would move them otherwise); pass only the returned list to it. A policy that
    trains ``random_subset`` first chooses the entries (:func:`select_random_entries`,
    drawn by ``generator``).
    """
    trainable_roles = FREEZE_POLICIES[policy].trains
    if "random_subset" in trainable_roles:
        select_random_entries(model, generator)
    roles = parameter_roles(model)
    trainable = []
    for name, param in model.named_parameters():
        train = roles[name] in trainable_roles
        param.requires_grad_(train)
        if train:
            trainable.append(param)
    if not trainable:
        present = sorted(set(roles.values()))
        raise ValueError(
            f"freeze policy {policy!r} trains roles {sorted(trainable_roles)} but the model "
            f"only has {present}: nothing would train (is the normalizer 'none'?)"
        )
    return trainable


def parameter_counts_by_role(model: nn.Module, trainable_only: bool = False) -> dict[str, int]:
    """Number of scalar parameters per role (every role present, zero if absent).

    An entry that ``random`` trains counts once, as ``random_subset``: its stale copy in
    the frozen original weight is not counted, so the total is the model's."""
    roles = parameter_roles(model)
    replaced = overlapping_counts(model)
    counts: Counter[str] = Counter({role: 0 for role in ROLES})
    for name, param in model.named_parameters():
        if trainable_only and not param.requires_grad:
            continue
        counts[roles[name]] += param.numel() - replaced.get(id(param), 0)
    return dict(counts)
