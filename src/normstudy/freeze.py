"""Parameter roles and freeze policies.

Every parameter gets a role by what it does, not by its module class, so that
Layer Norm's gamma is as much a normalizer parameter as Batch Norm's:

- ``norm_gamma`` / ``norm_beta``: the per-channel scale and shift of a normalizer;
- ``head``: the final classifier (``model.head``);
- ``weight``: every other parameter with two or more dimensions (conv, dense,
  embedding and recurrent matrices, Weight Norm directions);
- ``bias``: every other one-dimensional parameter.

A freeze policy names the roles that train. ``norm`` is Frankle et al. (2020)'s
"BatchNorm only" (all weights stay at their random init, only gamma and beta train);
``head`` is their random-features baseline; ``norm+head`` their BN + output layer.
"""

from __future__ import annotations

from collections import Counter

from torch import nn

from normstudy.norms.base import has_gamma_beta
from normstudy.registry import Registry

ROLES = ("norm_gamma", "norm_beta", "weight", "bias", "head")

FREEZE_POLICIES: Registry[frozenset[str]] = Registry("freeze policy", "freeze policies")
FREEZE_POLICIES.add("all", frozenset(ROLES))
FREEZE_POLICIES.add("norm", frozenset({"norm_gamma", "norm_beta"}))
FREEZE_POLICIES.add("norm+head", frozenset({"norm_gamma", "norm_beta", "head"}))
FREEZE_POLICIES.add("head", frozenset({"head"}))
FREEZE_POLICIES.add("all-but-norm", frozenset({"weight", "bias", "head"}))
FREEZE_POLICIES.add("gamma", frozenset({"norm_gamma"}))
FREEZE_POLICIES.add("beta", frozenset({"norm_beta"}))


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
    roles = {}
    for name, param in model.named_parameters():
        if id(param) in head_ids:
            roles[name] = "head"
        elif id(param) in norm_roles:
            roles[name] = norm_roles[id(param)]
        else:
            roles[name] = "weight" if param.dim() >= 2 else "bias"
    return roles


def apply_freeze_policy(model: nn.Module, policy: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` by role and return the trainable parameters, in order.

    Frozen parameters must never enter the optimizer (weight decay and momentum
    would move them otherwise); pass only the returned list to it.
    """
    trainable_roles = FREEZE_POLICIES.get(policy)
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
    """Number of scalar parameters per role (every role present, zero if absent)."""
    roles = parameter_roles(model)
    counts: Counter[str] = Counter({role: 0 for role in ROLES})
    for name, param in model.named_parameters():
        if trainable_only and not param.requires_grad:
            continue
        counts[roles[name]] += param.numel()
    return dict(counts)
