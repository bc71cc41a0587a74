"""Freeze policies: frozen parameters are bitwise unchanged, trainable ones move."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from normstudy.freeze import (
    FREEZE_POLICIES,
    ROLES,
    RandomEntries,
    apply_freeze_policy,
    parameter_counts_by_role,
    parameter_roles,
)
from normstudy.models import build_model, count_normalizers
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


@pytest.mark.parametrize("policy", sorted(set(FREEZE_POLICIES) - {"random"}))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_frozen_bitwise_unchanged_trainable_changed(model_name, norm, policy):
    model = model_for(model_name, norm)
    roles = parameter_roles(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = apply_freeze_policy(model, policy)
    train_steps(model, trainable)
    trained_roles = FREEZE_POLICIES[policy].trains
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
            "random_subset": 0,
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


# --- freeze "random": Frankle et al. 2020's two random parameters per channel ---------


def random_model(name: str, norm: str = "batch", seed: int = 0) -> tuple[torch.nn.Module, list]:
    model = model_for(name, norm)
    trainable = apply_freeze_policy(model, "random", torch.Generator().manual_seed(seed))
    return model, trainable


def chosen_indices(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.index.clone() for m in model.modules() if isinstance(m, RandomEntries)]


@pytest.mark.parametrize("name", ["resnet", "mlp", "vgg"])
@pytest.mark.parametrize("norm", ["batch", "layer", "lp"])
def test_random_trains_as_many_entries_as_bn_only(name, norm):
    bn_only = model_for(name, norm)
    apply_freeze_policy(bn_only, "norm")
    wanted = parameter_counts_by_role(bn_only, trainable_only=True)
    model, trainable = random_model(name, norm)
    counts = parameter_counts_by_role(model, trainable_only=True)
    assert counts["random_subset"] == wanted["norm_gamma"] + wanted["norm_beta"] > 0
    assert sum(counts.values()) == counts["random_subset"]
    assert sum(p.numel() for p in trainable) == counts["random_subset"]
    # the model's size is unchanged: trained entries count once, as random_subset
    everything = parameter_counts_by_role(model)
    assert sum(everything.values()) == sum(parameter_counts_by_role(bn_only).values())
    assert (
        everything["weight"] + everything["random_subset"]
        == (parameter_counts_by_role(bn_only)["weight"])
    )


def test_random_chooses_two_distinct_entries_per_output_channel_of_normalised_layers():
    model, _ = random_model("resnet")
    for module in model.modules():
        if isinstance(module, RandomEntries):
            original = next(
                p.original
                for p in model.modules()
                if isinstance(p, torch.nn.ModuleList) and any(step is module for step in p)
            )
            fan_in = original[0].numel()
            rows = module.index // fan_in
            assert rows.tolist() == [c for c in range(original.shape[0]) for _ in range(2)]
            assert module.index.unique().numel() == module.index.numel()
    # every normalizer's layer (7 along the path, 2 projection shortcuts), not the head
    assert len(chosen_indices(model)) == count_normalizers(model) == 9


def test_random_only_chosen_entries_move_frozen_bitwise_unchanged():
    """SGD with momentum 0.9 and weight decay 1e-2: a gradient mask would let weight decay
    move the frozen entries; the reparameterisation keeps them out of the optimizer."""
    model, trainable = random_model("resnet")
    weights = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if name.endswith(".original")
    }
    others = {name: p.detach().clone() for name, p in model.named_parameters()}
    effective_before = {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
    }
    train_steps(model, trainable)
    roles = parameter_roles(model)
    for name, param in model.named_parameters():
        if roles[name] == "random_subset":
            assert not torch.equal(param, others[name]), name
        else:
            assert torch.equal(param, others[name]) and not param.requires_grad, name
    assert weights  # the originals are frozen parameters, checked above
    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            continue
        after = module.weight.detach().flatten()
        before = effective_before[name].flatten()
        changed = (after != before).nonzero().flatten()
        entries = [m for m in module.modules() if isinstance(m, RandomEntries)]
        if entries:
            assert set(changed.tolist()) <= set(entries[0].index.tolist())
            assert changed.numel() > 0
        else:
            assert changed.numel() == 0, name


def test_random_selection_is_a_function_of_the_seed():
    first = chosen_indices(random_model("resnet", seed=3)[0])
    again = chosen_indices(random_model("resnet", seed=3)[0])
    other = chosen_indices(random_model("resnet", seed=4)[0])
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_random_selection_survives_a_state_dict_round_trip():
    """Resume equals uninterrupted: the chosen positions are buffers in the checkpoint, so a
    model rebuilt with another selection continues exactly as the original would."""
    straight, params = random_model("mlp", seed=0)
    train_steps(straight, params, steps=6)
    first, params = random_model("mlp", seed=0)
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(1)

    def steps(model, optimizer, n):
        for _ in range(n):
            x = torch.randn(6, *SHAPE, generator=generator)
            y = torch.randint(0, 3, (6,), generator=generator)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    steps(first, optimizer, 3)
    saved = (first.state_dict(), optimizer.state_dict())
    resumed, params = random_model("mlp", seed=99)
    resumed_optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2)
    resumed.load_state_dict(saved[0])
    resumed_optimizer.load_state_dict(saved[1])
    steps(resumed, resumed_optimizer, 3)
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(("name", "norm"), [("lstm", "batch"), ("mlp", "weight")])
def test_random_refuses_models_where_the_count_cannot_match(name, norm):
    with pytest.raises(ValueError, match="freeze 'random'"):
        random_model(name, norm)


def test_random_with_no_normalizer_trains_nothing_and_fails():
    with pytest.raises(ValueError, match="nothing would train"):
        random_model("mlp", "none")
