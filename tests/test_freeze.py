"""Freeze policies: frozen parameters are bitwise unchanged, trainable ones move."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from normstudy.freeze import (
    FREEZE_POLICIES,
    ROLES,
    apply_freeze_policy,
    parameter_counts_by_role,
    parameter_roles,
)
from normstudy.models import build_model
from normstudy.norms import make_norm_factory

MODELS = {
    "mlp": dict(depth=2, width=16),
    "resnet": dict(depth=8, width=0.5),
    "vgg": dict(depth=6, width=0.0625),
    "lstm": dict(width=8),
}
NORMS = ["batch", "layer", "weight", "regnorm", "prelayer", "lp"]
SHAPE = (1, 8, 8)


def model_for(name: str, norm: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        name,
        input_shape=SHAPE,
        num_classes=3,
        norm=make_norm_factory(norm),
        gamma_init="uniform",
        **MODELS[name],
    )


def train_steps(model: torch.nn.Module, params: list, steps: int = 4) -> None:
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(6, *SHAPE, generator=generator)
        y = torch.randint(0, 3, (6,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("policy", FREEZE_POLICIES.names())
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_frozen_bitwise_unchanged_trainable_changed(model_name, norm, policy):
    model = model_for(model_name, norm)
    roles = parameter_roles(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = apply_freeze_policy(model, policy)
    train_steps(model, trainable)
    trained_roles = FREEZE_POLICIES.get(policy)
    for name, param in model.named_parameters():
        if roles[name] in trained_roles:
            assert not torch.equal(param, before[name]), f"{name} ({roles[name]}) did not move"
        else:
            assert torch.equal(param, before[name]), f"frozen {name} ({roles[name]}) moved"
            assert not param.requires_grad


def test_roles_follow_function_not_module_class():
    for norm in ("batch", "layer", "group"):
        model = build_model(
            "mlp",
            input_shape=(4,),
            num_classes=2,
            norm=make_norm_factory(norm, **({"groups": 2} if norm == "group" else {})),
            depth=1,
            width=4,
        )
        roles = parameter_roles(model)
        assert sorted(set(roles.values())) == ["head", "norm_beta", "norm_gamma", "weight"]
        counts = parameter_counts_by_role(model)
        assert counts == {
            "norm_gamma": 4,
            "norm_beta": 4,
            "weight": 16,
            "bias": 0,
            "head": 4 * 2 + 2,
        }


def test_trainable_counts_by_role():
    model = build_model(
        "mlp", input_shape=(4,), num_classes=2, norm=make_norm_factory("none"), depth=1, width=4
    )
    apply_freeze_policy(model, "head")
    assert parameter_counts_by_role(model, trainable_only=True) == dict.fromkeys(ROLES, 0) | {
        "head": 10
    }
    assert parameter_counts_by_role(model)["bias"] == 4


def test_policy_that_trains_nothing_fails():
    model = build_model(
        "mlp", input_shape=(4,), num_classes=2, norm=make_norm_factory("none"), depth=1, width=4
    )
    with pytest.raises(ValueError, match="nothing would train"):
        apply_freeze_policy(model, "norm")


def test_unknown_policy_lists_valid_ones():
    model = model_for("mlp", "batch")
    with pytest.raises(KeyError, match="valid freeze policies: all, all-but-norm, beta"):
        apply_freeze_policy(model, "weights")
