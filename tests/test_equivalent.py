"""Morwani 2020 §3's equivalent point: a network without normalization that computes the
Batch Norm network's training-mode function on the full batch."""

from __future__ import annotations

import pytest
import torch

from normstudy.catalog.cell_rules import cell_problems
from normstudy.config import resolve_cell_config
from normstudy.models import build_model
from normstudy.models.equivalent import batch_statistics, fold_batch_norm
from normstudy.norms import make_norm_factory

SHAPE = (12,)


def mlp(norm: str, depth: int, norm_every: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(
        "mlp",
        input_shape=SHAPE,
        num_classes=4,
        norm=make_norm_factory(norm),
        depth=depth,
        width=10,
        norm_every=norm_every,
        gamma_init="uniform",
    )
    return model.double()


def full_batch(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 2.0 * torch.randn(n, *SHAPE, generator=g, dtype=torch.float64) + 0.7


@pytest.mark.parametrize("depth", [3, 9])
@pytest.mark.parametrize("norm_every", [1, 2])
def test_folded_network_computes_the_bn_networks_training_function(depth, norm_every):
    bn, plain, x = mlp("batch", depth, norm_every), mlp("none", depth, norm_every), full_batch()
    with torch.no_grad():  # non-zero beta, so b_eq's "+ beta" is exercised
        for module in bn.modules():
            if hasattr(module, "running_mean"):
                module.bias.uniform_(-0.5, 0.5)
    assert not torch.allclose(plain(x), bn.train()(x))
    fold_batch_norm(bn, plain, x)
    torch.testing.assert_close(plain(x), bn.train()(x), rtol=1e-10, atol=1e-10)


def test_fold_matches_the_hand_formula_on_the_first_layer():
    """w_eq = gamma / sigma * w and b_eq = gamma / sigma * (b - mu) + beta, with mu and the
    biased variance of w^T x on the batch and BN's eps = 1e-5 inside the root."""
    bn, plain, x = mlp("batch", 3), mlp("none", 3), full_batch()
    first = bn.hidden[0]
    z = x @ first.layer.weight.T
    mu, var = z.mean(0), ((z - z.mean(0)) ** 2).mean(0)
    gamma, beta = first.norm.weight, first.norm.bias
    scale = gamma / torch.sqrt(var + 1e-5)
    fold_batch_norm(bn, plain, x)
    layer = plain.hidden[0].layer
    torch.testing.assert_close(layer.weight, scale[:, None] * first.layer.weight)
    torch.testing.assert_close(layer.bias, scale * (0 - mu) + beta)
    torch.testing.assert_close(plain.head.weight, bn.head.weight, rtol=0, atol=0)


def test_statistics_leave_the_bn_networks_running_statistics_alone():
    bn = mlp("batch", 3)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    batch_statistics(bn, full_batch())
    assert all(torch.equal(v, before[k]) for k, v in bn.state_dict().items())


def test_fold_refuses_normalizers_other_than_batch_norm():
    with pytest.raises(TypeError, match="Batch Norm only"):
        fold_batch_norm(mlp("layer", 3), mlp("none", 3), full_batch())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"norm": "batch"}, "needs norm 'none', not 'batch'"),
        ({"norm": "none", "model": "resnet", "depth": 8}, "not defined for model 'resnet'; valid"),
    ],
)
def test_planning_rejects_init_from_where_it_is_undefined(overrides, message):
    config = resolve_cell_config({"init_from": "bn_equivalent", **overrides})
    assert any(message in problem for problem in cell_problems(config))


def test_planning_accepts_the_mlp_without_normalization_and_names_valid_values():
    config = resolve_cell_config({"init_from": "bn_equivalent", "norm": "none", "depth": 9})
    assert cell_problems(config) == []
    with pytest.raises(ValueError, match="bn_equivalent"):
        resolve_cell_config({"init_from": "bn_equivelant"})


def test_a_cell_starts_at_the_equivalent_point_of_the_same_seeds_bn_cell(tmp_path):
    """The starting function equals the BN cell's training-mode function on the full
    training set (checked through the loss at step 0: zero epochs evaluate the init)."""
    from normstudy.data.base import standardize
    from normstudy.train import prepare

    base = {"dataset": "digits", "model": "mlp", "depth": 3, "width": 16, "train_subset": 200}
    plain = prepare(
        resolve_cell_config({**base, "norm": "none", "init_from": "bn_equivalent"}),
        data_dir=None,
        download=False,
        threads=1,
    )
    bn = prepare(
        resolve_cell_config({**base, "norm": "batch"}), data_dir=None, download=False, threads=1
    )
    x = standardize(plain.train_x, plain.splits)
    torch.testing.assert_close(plain.model(x), bn.model.train()(x), rtol=1e-4, atol=1e-4)
