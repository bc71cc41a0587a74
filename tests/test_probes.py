"""Probes: known answers, no side effects on training, failures recorded, schedules parsed."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normstudy.catalog import PROBES
from normstudy.catalog.probes import ProbeDefinition
from normstudy.config import DEFAULTS
from normstudy.freeze import apply_freeze_policy, parameter_roles
from normstudy.models import build_model
from normstudy.norms import Normalizer, NormedLayer, collect_regularizers, make_norm_factory
from normstudy.probes import (
    PROBE_CLASSES,
    Probe,
    ProbeContext,
    build_probe,
    isolated,
    layers,
    parse_probe_entries,
    run_probe,
    samples_needed,
    slq_density,
    slq_from_values,
)
from normstudy.probes.base import batch_size_for
from normstudy.probes.landscape import optimizer_stepped
from normstudy.registry import UnknownNameError
from normstudy.train import data_loss

FAST_OPTIONS = {
    "hessian": {"n_samples": 32, "k": 3, "n_vectors": 2, "lanczos_steps": 8},
    "grad_confusion": {"n_batches": 2},
}
EXPENSIVE = {"hessian", "ics", "smoothness"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(norm: str = "batch", freeze: str = "all", depth: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(
        "mlp",
        input_shape=(6,),
        num_classes=3,
        norm=make_norm_factory(norm),
        depth=depth,
        width=8,
        gamma_init="uniform",
    )
    apply_freeze_policy(model, freeze)
    return model


def data(n: int = 48, features: int = 6, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=generator), torch.randint(
        0, 3, (n,), generator=generator
    )


def context(model, x, y, loss_fn=None, lr=0.1, batch_size=16, roles=None, seed=2, initial=None):
    return ProbeContext(
        model=model,
        config={**DEFAULTS, "batch_size": batch_size},
        probe_x=x,
        probe_y=y,
        loss_fn=loss_fn or data_loss,
        roles=parameter_roles(model) if roles is None else roles,
        initial_params=initial
        if initial is not None
        else {n: p.detach().clone() for n, p in model.named_parameters()},
        lr=lr,
        generator=torch.Generator().manual_seed(seed),
    )


def values(records, layer="model"):
    return {r["key"]: r["value"] for r in records if r["layer"] == layer}


def run_ok(probe, ctx):
    records, seconds, error = run_probe(probe, ctx)
    assert error is None, error
    assert seconds >= 0
    return records


class IdentityNorm(Normalizer):
    """gamma * x + beta: a normalizer whose gradients are easy to write by hand."""

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LinearNet(nn.Module):
    """x -> gamma * (W x) + beta -> c . a + d: linear, so every gradient is explicit."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = NormedLayer(nn.Linear(3, 2, bias=False), IdentityNorm(2, "dense"))
        self.head = nn.Linear(2, 1)
        with torch.no_grad():
            self.hidden.layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]]))
            self.hidden.norm.weight.copy_(torch.tensor([0.5, -2.0]))
            self.hidden.norm.bias.copy_(torch.tensor([0.1, 0.2]))
            self.head.weight.copy_(torch.tensor([[1.5, -0.4]]))
            self.head.bias.fill_(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))


def mean_output(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.mean()


class Quadratic(nn.Module):
    """Loss 0.5 theta^T diag(a) theta through ``quadratic_loss``: Hessian diag(a)."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta


def quadratic_loss(a: torch.Tensor):
    return lambda theta, y: 0.5 * (a * theta**2).sum()


def quadratic_context(a: torch.Tensor, theta: torch.Tensor | None = None, lr: float = 0.1):
    model = Quadratic(torch.ones_like(a) if theta is None else theta)
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    return context(model, x, y, loss_fn=quadratic_loss(a), roles={}, lr=lr)


# --- registry and options -------------------------------------------------------------


def test_registry_holds_every_probe_and_marks_the_expensive_ones():
    expected = {"grad_norms", "norm_params", "norms", "hessian", "propagation"}
    expected |= {"grad_confusion", "ics", "smoothness"}
    assert set(PROBE_CLASSES.names()) == expected
    assert {name for name in PROBES if PROBES[name].expensive} == EXPENSIVE


def test_unknown_probe_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown probe 'hessain'.*grad_norms.*smoothness"):
        build_probe("hessain")


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match="no option.*eigenvalues.*valid options: k, lanczos"):
        build_probe("hessian", eigenvalues=3)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("hessian", {"mode": "test"}, "'mode' = 'test'.*train, eval"),
        ("hessian", {"k": "3"}, "'k' = '3' must be an integer"),
        ("hessian", {"k": 0}, "'k' = 0 must be positive"),
        ("grad_confusion", {"n_batches": 1}, "n_batches.*>= 2"),
        ("grad_norms", {"parameters": "some"}, "trainable, all"),
        ("smoothness", {"step_factors": [1, "x"]}, "list of numbers"),
        ("norm_params", {"per_layer_hist": 1}, "true or false"),
    ],
)
def test_bad_option_values_fail_naming_them(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_probe(name, **options)


def test_options_are_merged_with_defaults_and_coerced():
    probe = build_probe("smoothness", step_factors=[1, 2])
    assert probe.settings == {"batch_size": None, "step_factors": (1.0, 2.0)}


def test_layers_are_the_normed_layers_in_depth_order():
    assert [name for name, _ in layers(mlp())] == ["hidden.0", "hidden.1", "hidden.2"]
    torch.manual_seed(0)
    resnet = build_model(
        "resnet", input_shape=(3, 8, 8), num_classes=3, norm=make_norm_factory("batch"), depth=8
    )
    names = [name for name, _ in layers(resnet)]
    assert names[:3] == ["stem", "blocks.0.conv1", "blocks.0.conv2"]
    assert len(names) == 7 and not any("shortcut" in name for name in names)


# --- side effects ---------------------------------------------------------------------


def model_state(model: nn.Module):
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "modes": {n: m.training for n, m in model.named_modules()},
    }


def assert_same_state(before, after):
    assert before["requires_grad"] == after["requires_grad"]
    assert before["modes"] == after["modes"]
    for kind in ("params", "buffers"):
        assert before[kind].keys() == after[kind].keys()
        for name, tensor in before[kind].items():
            assert torch.equal(tensor, after[kind][name]), f"{kind} {name} changed"
    for name, grad in before["grads"].items():
        other = after["grads"][name]
        assert (grad is None) == (other is None), f"grad of {name} appeared or vanished"
        assert grad is None or torch.equal(grad, other), f"grad of {name} changed"


def same_records(a, b):
    assert [(r["layer"], r["key"]) for r in a] == [(r["layer"], r["key"]) for r in b]
    np.testing.assert_array_equal([r["value"] for r in a], [r["value"] for r in b])


@pytest.mark.parametrize("name", sorted(PROBE_CLASSES.names()))
@pytest.mark.parametrize(
    ("norm", "freeze"), [("batch", "all"), ("batch_noisy", "all"), ("batch", "norm")]
)
def test_probe_leaves_training_state_bitwise_unchanged(name, norm, freeze):
    model = mlp(norm, freeze)
    x, y = data()
    with torch.no_grad():
        model(x[:16])
    model.hidden[1].eval()
    for param in model.parameters():
        if param.requires_grad:
            param.grad = torch.randn_like(param)
    before = model_state(model)
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    probe = build_probe(name, **FAST_OPTIONS.get(name, {}))
    records = run_ok(probe, context(model, x, y))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert_same_state(before, model_state(model))
    assert records and all(r["probe"] == name for r in records)
    assert any(math.isfinite(r["value"]) for r in records)
    same_records(records, run_ok(probe, context(model, x, y)))


def test_isolated_restores_what_a_forward_in_train_mode_changes():
    model = mlp("batch")
    x, _ = data()
    before = model_state(model)
    with isolated(context(model, x, x)):
        model.train()
        model(x)
        running = model.hidden[0].norm.running_mean
        assert not torch.equal(running, before["buffers"]["hidden.0.norm.running_mean"])
    assert_same_state(before, model_state(model))


def test_regnorm_keeps_the_regularizer_of_the_last_training_forward():
    model = mlp("regnorm")
    x, y = data()
    model(x[:16])
    terms = [layer.norm.regularizer() for _, layer in layers(model)]
    run_ok(build_probe("grad_norms"), context(model, x, y))
    assert all(t is not None for t in terms)
    assert all(
        layer.norm.regularizer() is t for (_, layer), t in zip(layers(model), terms, strict=True)
    )


class LocalProbe(Probe):
    """A probe of this test module: its catalog entry is its own, without options."""

    @classmethod
    def definition(cls):
        return ProbeDefinition(cls.name, cls.name)


class Vandal(LocalProbe):
    """Changes everything it can reach, then fails."""

    name = "vandal"

    def run(self, ctx):
        with torch.no_grad():
            for param in ctx.model.parameters():
                param.add_(1.0)
                if param.grad is not None:
                    param.grad.add_(1.0)
                param.grad = torch.ones_like(param)
                param.requires_grad_(False)
        ctx.model.hidden[0].norm.running_var = torch.full((8,), 7.0)
        ctx.model.eval()
        ctx.model(ctx.probe_x)
        ctx.model.train()
        ctx.model(ctx.probe_x)
        torch.randn(5)
        raise RuntimeError("boom")


def test_failing_probe_records_failure_and_restores_everything():
    model = mlp("batch_noisy")
    x, y = data()
    model.hidden[0].norm.weight.grad = torch.randn(8)
    before = model_state(model)
    rng_before = torch.get_rng_state()
    records, seconds, error = run_probe(Vandal(), context(model, x, y))
    assert error == "RuntimeError: boom"
    assert records == [
        {"probe": "vandal", "layer": "model", "layer_index": -1, "key": "failed", "value": 1.0}
    ]
    assert seconds >= 0
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert_same_state(before, model_state(model))


class Returns(LocalProbe):
    name = "returns"

    def __init__(self, records):
        super().__init__()
        self.records = records

    def run(self, ctx):
        return self.records


@pytest.mark.parametrize(
    ("records", "error"),
    [
        (
            [
                {
                    "probe": "returns",
                    "layer": "model",
                    "layer_index": -1,
                    "key": "k",
                    "value": math.nan,
                }
            ],
            "ProbeFailure: all 1 values are non-finite",
        ),
        ([{"probe": "returns", "key": "k", "value": 1.0}], "TypeError: probe 'returns' returned"),
        ((), "TypeError: probe 'returns' returned tuple"),
    ],
)
def test_non_finite_or_malformed_results_are_failures(records, error):
    model = mlp()
    x, y = data()
    got, _, message = run_probe(Returns(records), context(model, x, y))
    assert message.startswith(error)
    assert [r["key"] for r in got] == ["failed"]


@pytest.mark.parametrize("name", ["grad_norms", "hessian", "ics", "norms"])
def test_diverged_model_gives_failure_not_exception(name):
    model = mlp()
    with torch.no_grad():
        model.hidden[0].layer.weight.fill_(math.nan)
    x, y = data()
    records, _, error = run_probe(
        build_probe(name, **FAST_OPTIONS.get(name, {})), context(model, x, y)
    )
    assert error is not None and "non-finite" in error
    assert [(r["key"], r["value"]) for r in records] == [("failed", 1.0)]


# --- grad_norms and norms: a linear model computed by hand -----------------------------


def linear_case():
    model = LinearNet()
    x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 0.0]])
    return model, x, context(model, x, torch.zeros(4), loss_fn=mean_output)


def test_grad_norms_match_hand_computed_gradients():
    model, x, ctx = linear_case()
    W, gamma = model.hidden.layer.weight.detach(), model.hidden.norm.weight.detach()
    beta, c = model.hidden.norm.bias.detach(), model.head.weight.detach()[0]
    h = x @ W.T
    expected = {
        "weight": (c * gamma)[:, None] * x.mean(0)[None, :],
        "norm_gamma": c * h.mean(0),
        "norm_beta": c,
        "head": torch.cat([(h * gamma + beta).mean(0), torch.ones(1)]),
    }
    records = run_ok(build_probe("grad_norms"), ctx)
    model_values, layer_values = values(records), values(records, "hidden")
    for role, grad in expected.items():
        assert model_values[f"grad_abs_mean/{role}"] == pytest.approx(grad.abs().mean().item())
    every = torch.cat([g.reshape(-1) for g in expected.values()])
    assert model_values["grad_abs_mean/all"] == pytest.approx(every.abs().mean().item())
    in_layer = torch.cat([expected[r].reshape(-1) for r in ("weight", "norm_gamma", "norm_beta")])
    assert layer_values["grad_abs_mean/all"] == pytest.approx(in_layer.abs().mean().item())
    assert "grad_abs_mean/head" not in layer_values
    assert {r["layer_index"] for r in records if r["layer"] == "hidden"} == {0}


def test_grad_norms_of_frozen_parameters_only_on_request():
    model, x, ctx = linear_case()
    apply_freeze_policy(model, "norm")
    trainable = values(run_ok(build_probe("grad_norms"), ctx))
    everything = values(run_ok(build_probe("grad_norms", parameters="all"), ctx))
    assert {k for k in trainable if k != "grad_abs_mean/all"} == {
        "grad_abs_mean/norm_gamma",
        "grad_abs_mean/norm_beta",
    }
    assert "grad_abs_mean/weight" in everything
    assert trainable["grad_abs_mean/norm_gamma"] == everything["grad_abs_mean/norm_gamma"]


def test_norms_match_hand_computation():
    model, x, ctx = linear_case()
    W, gamma = model.hidden.layer.weight.detach(), model.hidden.norm.weight.detach()
    beta, c = model.hidden.norm.bias.detach(), model.head.weight.detach()[0]
    a = (x @ W.T) * gamma + beta
    layer = values(run_ok(build_probe("norms"), ctx), "hidden")
    assert layer["weight_norm"] == pytest.approx(W.norm().item())
    assert layer["activation_norm"] == pytest.approx(a.norm().item() / 2.0)
    assert layer["activation_grad_norm"] == pytest.approx(c.norm().item())
    assert layer["distance_from_init"] == 0.0


def test_distance_from_init_is_zero_for_frozen_parts_and_exact_for_a_known_shift():
    model = mlp("batch", freeze="head")
    x, y = data()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([model.head.weight, model.head.bias], lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    initial["head.bias"] = model.head.bias.detach() - torch.tensor([3.0, 0.0, 4.0])
    initial["head.weight"] = model.head.weight.detach().clone()
    records = run_ok(build_probe("norms"), context(model, x, y, initial=initial))
    model_values = values(records)
    assert model_values["distance_from_init"] == pytest.approx(5.0)
    assert model_values["distance_from_init/head"] == pytest.approx(5.0)
    for role in ("weight", "norm_gamma", "norm_beta"):
        assert model_values[f"distance_from_init/{role}"] == 0.0
    for name, _ in layers(model):
        assert values(records, name)["distance_from_init"] == 0.0


def test_distance_from_init_sees_training():
    model = mlp("batch", freeze="all")
    x, y = data()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.hidden[2].norm.bias.add_(0.5)
    records = run_ok(build_probe("norms"), context(model, x, y, initial=initial))
    assert values(records, "hidden.2")["distance_from_init"] == pytest.approx(0.5 * 8**0.5)
    assert values(records, "hidden.0")["distance_from_init"] == 0.0


# --- hessian: quadratics with a known spectrum ----------------------------------------


def test_hessian_top_eigenvalues_of_a_quadratic():
    a = torch.linspace(0.5, 12.0, 60)
    probe = build_probe("hessian", k=5, n_vectors=1, lanczos_steps=4)
    got = values(run_ok(probe, quadratic_context(a)))
    top = a.flip(0)[:5].tolist()
    for i, expected in enumerate(top):
        assert got[f"lambda_{i + 1}"] == pytest.approx(expected, rel=1e-4)
    assert got["outlier_ratio"] == pytest.approx(top[0] / top[-1], rel=1e-4)
    assert got["mode_train"] == 1.0 and got["n_params"] == 60


def test_hessian_dense_path_for_few_parameters():
    a = torch.tensor([5.0, -1.0, 2.0, 0.5])
    got = values(run_ok(build_probe("hessian", k=3, n_vectors=1), quadratic_context(a)))
    assert [got[f"lambda_{i}"] for i in (1, 2, 3)] == pytest.approx([5.0, 2.0, 0.5], rel=1e-5)


def test_hessian_of_least_squares_is_the_input_second_moment():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.head = nn.Linear(5, 1)
    x = torch.randn(40, 5) * torch.tensor([3.0, 1.0, 0.5, 2.0, 0.1])
    y = torch.randn(40)

    def loss_fn(out, target):
        return 0.5 * (out[:, 0] - target).pow(2).mean()

    ctx = context(model, x, y, loss_fn=loss_fn, roles={})
    got = values(run_ok(build_probe("hessian", k=2, n_vectors=1, mode="eval"), ctx))
    augmented = torch.cat([x, torch.ones(40, 1)], 1).double()
    expected = torch.linalg.eigvalsh(augmented.T @ augmented / 40).flip(0)[:2]
    assert [got["lambda_1"], got["lambda_2"]] == pytest.approx(expected.tolist(), rel=1e-4)
    assert got["mode_eval"] == 1.0 and "mode_train" not in got


def test_slq_puts_the_mass_on_the_eigenvalues():
    a = torch.cat([torch.full((30,), 1.0), torch.full((15,), 3.0), torch.full((5,), 10.0)])
    probe = build_probe("hessian", k=2, n_vectors=3, lanczos_steps=10)
    got = values(run_ok(probe, quadratic_context(a)))
    nodes, weights = slq_from_values(got)
    for eigenvalue, mass in ((1.0, 0.6), (3.0, 0.3), (10.0, 0.1)):
        near = np.abs(nodes - eigenvalue) < 1e-3
        assert weights[near].sum() / 3 == pytest.approx(mass, abs=1e-4)
    assert got["trace_estimate"] == pytest.approx(a.sum().item(), rel=1e-5)


def test_slq_quadrature_reproduces_spectral_moments():
    a = torch.linspace(-2.0, 9.0, 50)
    got = values(
        run_ok(build_probe("hessian", k=2, n_vectors=2, lanczos_steps=6), quadratic_context(a))
    )
    for vector in range(2):
        nodes = np.array([got[f"slq_node/{vector}/{j}"] for j in range(6)])
        weights = np.array([got[f"slq_weight/{vector}/{j}"] for j in range(6)])
        assert weights.sum() == pytest.approx(1.0)
        for power in (1, 2, 5):
            expected = a.double().pow(power).mean().item()
            assert (weights * nodes**power).sum() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_slq_density_integrates_to_one_and_peaks_at_nodes():
    grid = np.linspace(-5, 15, 4001)
    density = slq_density(np.array([0.0, 10.0]), np.array([0.75, 0.25]), grid, sigma=0.2)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, rel=1e-6)
    assert grid[np.argmax(density)] == pytest.approx(0.0, abs=1e-2)
    assert density[np.searchsorted(grid, 10.0)] == pytest.approx(density.max() / 3, rel=1e-3)


def test_arpack_non_convergence_is_a_recorded_failure():
    a = torch.linspace(0.5, 12.0, 200)
    probe = build_probe("hessian", k=10, maxiter=1, tol=1e-14)
    records, _, error = run_probe(probe, quadratic_context(a))
    assert error.startswith("ArpackNoConvergence")
    assert [r["key"] for r in records] == ["failed"]


# --- propagation and gradient confusion -------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "batch_noisy"])
def test_identical_minibatches_have_correlation_one(norm):
    model = mlp(norm)
    x, y = data()
    records = run_ok(build_probe("propagation", noise=0.0), context(model, x, y))
    correlations = [r["value"] for r in records if r["key"] == "correlation"]
    assert len(correlations) == 3
    assert correlations == pytest.approx([1.0] * 3, abs=1e-6)
    assert values(records)["output_correlation"] == pytest.approx(1.0, abs=1e-6)


def test_noisy_minibatch_is_less_correlated_by_the_noise_level():
    model = mlp("layer")
    x, y = data(n=256)
    records = run_ok(build_probe("propagation", noise=0.5, batch_size=256), context(model, x, y))
    got = values(records)
    assert got["input_correlation"] == pytest.approx(1 / math.sqrt(1.25), abs=0.02)
    assert all(r["value"] < 1.0 - 1e-4 for r in records if r["key"] == "correlation")


def test_identical_minibatch_gradients_are_perfectly_correlated():
    model = mlp("batch")
    x, y = data(n=16)
    ctx = context(model, x.repeat(3, 1), y.repeat(3), batch_size=16)
    records = run_ok(build_probe("grad_confusion", n_batches=3), ctx)
    for where in ["model", "hidden.0", "hidden.1", "hidden.2"]:
        got = values(records, where)
        assert got["grad_cosine_mean"] == pytest.approx(1.0, abs=1e-6)
        assert got["grad_cosine_min"] == pytest.approx(1.0, abs=1e-6)
        assert got["grad_correlation_mean"] == pytest.approx(1.0, abs=1e-6)
        assert got["grad_norm"] > 0
    different = values(
        run_ok(
            build_probe("grad_confusion", n_batches=3), context(model, *data(n=48), batch_size=16)
        )
    )
    assert different["grad_cosine_mean"] < 0.99


# --- ics and smoothness: exact answers and parameters untouched ------------------------


class ScalarChain(nn.Module):
    """f(x) = c * b * a * x + d through two normed (un-normalised) layers and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.first = NormedLayer(nn.Linear(1, 1, bias=False), None)
        self.second = NormedLayer(nn.Linear(1, 1, bias=False), None)
        self.head = nn.Linear(1, 1)
        with torch.no_grad():
            self.first.layer.weight.fill_(0.5)
            self.second.layer.weight.fill_(2.0)
            self.head.weight.fill_(1.5)
            self.head.bias.fill_(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.second(self.first(x)))


def test_ics_matches_the_hand_computed_gradient_change():
    model = ScalarChain()
    x = torch.tensor([[0.5], [1.5]])
    ctx = context(model, x, torch.zeros(2), loss_fn=mean_output, lr=0.1)
    before = model_state(model)
    records = build_probe("ics").run(ctx)
    assert_same_state(before, model_state(model))
    first, second = values(records, "first"), values(records, "second")
    assert first["ics_l2"] == pytest.approx(0.0, abs=1e-7)
    assert first["ics_cosine"] == pytest.approx(1.0)
    # dL/db = c a m = 0.75; a' = a - lr c b m = 0.2; dL/db' = c a' m = 0.3
    assert second["grad_norm"] == pytest.approx(0.75)
    assert second["ics_l2"] == pytest.approx(0.45)
    assert second["ics_relative"] == pytest.approx(0.6)
    assert second["ics_cosine"] == pytest.approx(1.0)


def scalar_chain_optimizer(model: ScalarChain, kind: str) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 0.1 whose buffer for ``first`` is 1.0, as
    after earlier steps (plain or Nesterov), or a fresh Adam; lr 0.1."""
    params = list(model.parameters())
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.1)
    optimizer = torch.optim.SGD(
        params, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=kind == "nesterov"
    )
    for param in params:
        optimizer.state[param]["momentum_buffer"] = torch.ones_like(param)
    return optimizer


@pytest.mark.parametrize(
    ("kind", "first_after"),
    [
        # d = dL/da + wd a = 3 + 0.05 = 3.05; buf' = 0.9 * 1 + 3.05 = 3.95; a' = a - lr buf'
        ("momentum", 0.5 - 0.1 * 3.95),
        # Nesterov: a' = a - lr (d + 0.9 buf') = 0.5 - 0.1 (3.05 + 3.555)
        ("nesterov", 0.5 - 0.1 * (3.05 + 0.9 * 3.95)),
        # Adam's first step moves by lr * sign(g) (bias-corrected m / sqrt(v), eps 1e-8)
        ("adam", 0.5 - 0.1),
    ],
)
def test_ics_steps_the_earlier_layers_by_the_optimizers_own_update(kind, first_after):
    """Santurkar et al. §2.2: G' is taken at W(t+1), the optimizer's actual update."""
    model = ScalarChain()
    x = torch.tensor([[0.5], [1.5]])
    ctx = context(model, x, torch.zeros(2), loss_fn=mean_output, lr=0.1)
    ctx.optimizer = scalar_chain_optimizer(model, kind)
    optimizer_before = copy.deepcopy(ctx.optimizer.state_dict())
    before = model_state(model)
    second = values(build_probe("ics").run(ctx), "second")
    assert_same_state(before, model_state(model))
    after = ctx.optimizer.state_dict()
    for index, state in optimizer_before["state"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, after["state"][index][key]), key
    # dL/db = c a m = 0.75 at a = 0.5 and c a' m = 1.5 a' after the step of a
    assert second["grad_norm"] == pytest.approx(0.75)
    assert second["ics_l2"] == pytest.approx(abs(0.75 - 1.5 * first_after), rel=1e-5)


def test_optimizer_stepped_matches_sgd_by_hand_and_leaves_the_optimizer_alone():
    model = mlp("batch")
    x, y = data()
    optimizer = torch.optim.SGD(
        [
            {"params": [model.hidden[0].layer.weight], "weight_decay": 0.01},
            {"params": [model.hidden[0].norm.weight], "weight_decay": 0.0},
        ],
        lr=0.05,
        momentum=0.9,
    )
    for _ in range(2):  # real steps, so that there are momentum buffers
        optimizer.zero_grad()
        F.cross_entropy(model(x[:16]), y[:16]).backward()
        optimizer.step()
    ctx = context(model, x, y)
    ctx.optimizer = optimizer
    names = ["hidden.0.layer.weight", "hidden.0.norm.weight"]
    params = dict(model.named_parameters())
    grads = {name: torch.randn_like(params[name]) for name in names}
    buffers = {name: optimizer.state[params[name]]["momentum_buffer"].clone() for name in names}
    got = optimizer_stepped(ctx, names, grads)
    for name, decay in zip(names, (0.01, 0.0), strict=True):
        w = params[name].detach()
        want = w - 0.05 * (0.9 * buffers[name] + grads[name] + decay * w)
        torch.testing.assert_close(got[name], want)
        assert torch.equal(optimizer.state[params[name]]["momentum_buffer"], buffers[name])


def test_the_probes_loss_of_a_regnorm_model_is_its_cross_entropy():
    """The papers' Hessians and gradients are of the data loss, not of RegNorm's term:
    with the loss the training loop hands the probes (:func:`data_loss`), the loss the
    probes differentiate is the cross-entropy, not it plus lambda times the term."""
    model = mlp("regnorm")
    x, y = data()
    ctx = context(model, x, y, loss_fn=data_loss)
    loss0 = values(build_probe("smoothness").run(ctx))["loss/0"]
    model.train()
    batch = batch_size_for(None, ctx.config)
    cross_entropy = F.cross_entropy(model(x[:batch]), y[:batch]).item()
    regularizer = collect_regularizers(model).item()
    assert regularizer > 1e-3
    assert loss0 == pytest.approx(cross_entropy, rel=1e-6)
    assert loss0 != pytest.approx(cross_entropy + 0.1 * regularizer, rel=1e-4)


def test_smoothness_along_an_eigenvector_of_a_quadratic():
    a = torch.tensor([3.0, 1.0, 0.5])
    ctx = quadratic_context(a, theta=torch.tensor([2.0, 0.0, 0.0]), lr=0.1)
    before = model_state(ctx.model)
    got = values(build_probe("smoothness").run(ctx))
    assert_same_state(before, model_state(ctx.model))
    # g = A theta = 6 e0; loss(theta - eta g) = 6 (1 - 3 eta)^2; ||dg|| = 18 eta
    losses = {f: 6 * (1 - 3 * 0.1 * f) ** 2 for f in (0.5, 1, 2, 4)}
    for factor, loss in losses.items():
        assert got[f"loss/{factor:g}"] == pytest.approx(loss, rel=1e-5)
    assert got["loss/0"] == pytest.approx(6.0)
    assert got["loss_range"] == pytest.approx(max(losses.values()) - min(losses.values()))
    assert got["grad_change_max"] == pytest.approx(18 * 0.4, rel=1e-5)
    assert got["beta_smoothness"] == pytest.approx(3.0, rel=1e-5)


# --- norm_params --------------------------------------------------------------------------


def test_norm_params_fractions_histograms_and_values():
    model = mlp("batch")
    with torch.no_grad():
        model.hidden[0].norm.weight.copy_(torch.tensor([0, 0.005, -0.02, 0.03, 0.07, 0.5, 1, -3]))
        model.hidden[1].norm.weight.fill_(0.5)
        model.hidden[2].norm.weight.fill_(0.5)
    probe = build_probe("norm_params", thresholds=[0.01, 0.05, 0.1, 0.5])
    records = run_ok(probe, context(model, *data()))
    first, overall = values(records, "hidden.0"), values(records)
    assert overall["frac_abs_gamma_below/0.5"] == 5 / 24
    assert first["frac_abs_gamma_below/0.01"] == 2 / 8
    assert first["frac_abs_gamma_below/0.05"] == 4 / 8
    assert first["frac_abs_gamma_below/0.1"] == 5 / 8
    assert overall["frac_abs_gamma_below/0.01"] == 2 / 24
    assert overall["num_gamma"] == 24
    assert [first[f"gamma/{c}"] for c in range(8)] == pytest.approx(
        [0, 0.005, -0.02, 0.03, 0.07, 0.5, 1, -3]
    )
    histogram = {k: v for k, v in overall.items() if k.startswith("hist_gamma/")}
    assert len(histogram) == 50
    assert histogram["hist_gamma/0.48"] == 17
    assert sum(histogram.values()) + overall["hist_gamma_under"] == 24
    assert overall["hist_gamma_under"] == 1 and overall["hist_gamma_over"] == 0


def test_norm_params_without_normalizers_counts_zero():
    records = run_ok(build_probe("norm_params"), context(mlp("none"), *data()))
    assert [(r["key"], r["value"]) for r in records] == [("num_gamma", 0.0)]


# --- schedules ----------------------------------------------------------------------------


def test_probe_names_get_the_default_schedule():
    cheap, expensive = parse_probe_entries(["grad_norms", "hessian"])
    assert (cheap.every_epochs, cheap.every_steps, cheap.at_init, cheap.at_end) == (
        1,
        0,
        True,
        True,
    )
    assert (expensive.every_epochs, expensive.at_init, expensive.at_end) == (0, True, True)
    assert cheap.due("epoch", 3, 30) and not expensive.due("epoch", 3, 30)
    assert expensive.due("init", 0, 0) and expensive.due("end", 5, 50)


def test_full_entries_and_due():
    (entry,) = parse_probe_entries(
        [
            {
                "name": "ics",
                "every_epochs": 2,
                "every_steps": 3,
                "at_init": False,
                "at_end": True,
                "options": {"batch_size": 8},
            }
        ]
    )
    assert entry.build().settings["batch_size"] == 8
    assert not entry.due("init", 0, 0)
    assert entry.due("epoch", 2, 17) and not entry.due("epoch", 3, 17)
    assert entry.due("step", 1, 6) and not entry.due("step", 1, 7)
    assert entry.due("end", 3, 30)
    with pytest.raises(ValueError, match="unknown probe phase 'later'; valid phases: init"):
        entry.due("later", 0, 0)


def test_at_steps_runs_after_the_listed_steps_besides_the_period():
    """ "Is Batch Norm unique?" §5-6: dense early, sparse later."""
    (entry,) = parse_probe_entries([{"name": "hessian", "every_steps": 100, "at_steps": [10, 50]}])
    due = [step for step in range(1, 301) if entry.due("step", 0, step)]
    assert due == [10, 50, 100, 200, 300]
    (plain,) = parse_probe_entries(["hessian"])
    assert plain.at_steps == () and not any(plain.due("step", 0, s) for s in range(1, 60))


def test_labels_let_one_probe_run_twice():
    entries = parse_probe_entries(
        [{"name": "hessian", "options": {"mode": "eval"}, "label": "hessian_eval"}, "hessian"]
    )
    assert [e.build().label for e in entries] == ["hessian_eval", "hessian"]
    assert entries[0].build().settings["mode"] == "eval"
    relabelled = parse_probe_entries([{"name": "norm_params", "label": "gammas"}])[0].build()
    assert run_ok(relabelled, context(mlp(), *data()))[0]["probe"] == "gammas"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("grad_norms", "'probes' must be a list"),
        ([3], r"probes\[0\] = 3 must be a probe name or a mapping"),
        (["grad_norm"], r"probes\[0\]: unknown probe 'grad_norm'; valid probes: grad_confusion"),
        ([{"every_epochs": 1}], r"has no 'name'"),
        ([{"name": "norms", "every_epoch": 1}], r"unknown key\(s\) 'every_epoch'; valid keys"),
        ([{"name": "norms", "every_epochs": -1}], "'every_epochs' must be an integer >= 0"),
        ([{"name": "norms", "every_steps": True}], "'every_steps' must be an integer >= 0"),
        ([{"name": "norms", "every_epochs": "2"}], "'every_epochs' must be an integer >= 0"),
        ([{"name": "norms", "at_init": "yes"}], "'at_init' must be true or false"),
        ([{"name": "norms", "at_steps": 5}], r"'at_steps' must be a list of optimizer steps"),
        ([{"name": "norms", "at_steps": [0, 5]}], r"step 0 is at_init"),
        ([{"name": "norms", "at_steps": [10, 5]}], r"'at_steps' must increase"),
        ([{"name": "norms", "options": [1]}], "'options' must be a mapping"),
        ([{"name": "norms", "options": {"bins": 3}}], r"probes\[0\]: .*valid options: batch_size"),
        (["norms", {"name": "hessian"}, "norms"], r"probes\[2\]: label 'norms' is used twice"),
    ],
)
def test_bad_probe_entries_fail_naming_the_problem(entries, message):
    with pytest.raises(ValueError, match=message):
        parse_probe_entries(entries)


def test_samples_needed_is_the_largest_subset_any_probe_uses():
    config = {**DEFAULTS, "batch_size": 16}
    assert samples_needed(parse_probe_entries(["norm_params"]), config) == 0
    assert samples_needed(parse_probe_entries(["grad_norms", "grad_confusion"]), config) == 64
    assert samples_needed(parse_probe_entries(["grad_norms", "hessian"]), config) == 512
    assert samples_needed([], config, minimum=512) == 512
