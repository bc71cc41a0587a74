"""Normalizers: formulas against hand computations and torch reference modules."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normstudy.norms import (
    NORM_CLASSES,
    NormedLayer,
    build_norm,
    collect_regularizers,
    make_norm_factory,
)
from normstudy.registry import UnknownNameError

C = 6
SHAPES = {"conv": (4, C, 3, 3), "dense": (5, C)}
KINDS = tuple(SHAPES)
EXPECTED = {
    "batch",
    "batch_noisy",
    "batch_train",
    "bmlv",
    "group",
    "instance",
    "layer",
    "lmbv",
    "lp",
    "none",
    "noisy_none",
    "prelayer",
    "preregnorm",
    "regnorm",
    "weight",
}


def sample(kind: str, seed: int = 0) -> torch.Tensor:
    """Activations with a non-zero mean and non-unit scale that differ by channel."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPES[kind], generator=g, dtype=torch.float64)
    shape = (1, C) + (1,) * (x.dim() - 2)
    return x * torch.linspace(0.5, 3.0, C, dtype=torch.float64).view(shape) + torch.arange(
        C, dtype=torch.float64
    ).view(shape)


def build(name: str, kind: str, **options: object) -> nn.Module:
    """A float64 normalizer with random gamma and beta, so the affine map is exercised."""
    norm = build_norm(name, C, kind, **options).double()
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(C, generator=g, dtype=torch.float64) + 0.5)
        norm.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64))
    return norm


def batch_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0, *range(2, x.ndim))


def layer_axes(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def channel(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    return values.reshape((1, -1) + (1,) * (x.ndim - 2))


def affine(norm: nn.Module, x_hat: np.ndarray) -> np.ndarray:
    gamma = norm.weight.detach().numpy()
    beta = norm.bias.detach().numpy()
    return x_hat * channel(gamma, x_hat) + channel(beta, x_hat)


def standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def run(norm: nn.Module, x: torch.Tensor) -> np.ndarray:
    return norm(x).detach().numpy()


# --- registry and options ---------------------------------------------------------


def test_every_normalizer_is_registered():
    assert set(NORM_CLASSES.names()) == EXPECTED


def test_unknown_normalizer_fails_listing_valid_names():
    for call in (lambda: build_norm("batchnorm", C, "conv"), lambda: make_norm_factory("bn")):
        with pytest.raises(UnknownNameError) as error:
            call()
        message = str(error.value)
        assert "batchnorm" in message or "'bn'" in message
        assert all(name in message for name in ("batch", "layer", "regnorm", "none"))


def test_unknown_option_fails_listing_valid_options():
    with pytest.raises(ValueError, match="group") as error:
        build_norm("group", C, "conv", group=2)
    assert "eps" in str(error.value) and "groups" in str(error.value)
    with pytest.raises(ValueError, match="momentum"):
        make_norm_factory("batch", momentm=0.2)


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("batch", {"eps": 0}, "eps"),
        ("batch", {"momentum": 1.5}, "momentum"),
        ("layer", {"eps": "small"}, "eps"),
        ("batch_noisy", {"noise_var": 0.5}, "noise_var"),
        ("batch_noisy", {"noise_mean": -1}, "noise_mean"),
        ("regnorm", {"reg_units": "layer"}, "reg_units"),
        ("preregnorm", {"reg_reduce": "max"}, "reg_reduce"),
        ("group", {"groups": 0}, "groups"),
        ("lp", {"centered": "yes"}, "centered"),
    ],
)
def test_bad_option_values_fail_naming_the_option(name, options, fragment):
    with pytest.raises(ValueError, match=fragment):
        build_norm(name, C, "conv", **options)


def test_none_builds_no_normalizer():
    assert build_norm("none", C, "conv") is None
    assert make_norm_factory("none")(C, "dense") is None


def test_unsupported_kind_fails_clearly():
    with pytest.raises(ValueError, match="instance.*dense.*supports: conv"):
        build_norm("instance", C, "dense")
    for name in EXPECTED - {"none", "instance"}:
        assert NORM_CLASSES.get(name).supports == frozenset(KINDS), name


# --- Batch Norm family -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_batch_matches_torch_batchnorm_in_train_and_eval(kind):
    ours = build("batch", kind, momentum=0.3, eps=1e-3)
    ref = (nn.BatchNorm2d if kind == "conv" else nn.BatchNorm1d)(C, eps=1e-3, momentum=0.3)
    ref = ref.double()
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    for step in range(3):
        x = sample(kind, seed=step)
        torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert not torch.allclose(ours.running_var, torch.ones(C, dtype=torch.float64))
    ours.eval()
    ref.eval()
    x = sample(kind, seed=10)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_train_uses_batch_statistics_in_eval(kind):
    norm = build("batch_train", kind, eps=1e-3)
    norm(sample(kind, seed=1))
    norm.eval()
    x = sample(kind, seed=2)
    want = affine(norm, standardize(x.numpy(), batch_axes(x.numpy()), 1e-3))
    np.testing.assert_allclose(run(norm, x), want, rtol=1e-10, atol=1e-12)


def test_noisy_batch_norm_is_batch_norm_plus_resampled_noise():
    noisy = build("batch_noisy", "conv", noise_mean=0.3, noise_var=2.0)
    plain = build("batch", "conv")
    x = sample("conv")
    torch.manual_seed(5)
    got = noisy(x)
    torch.manual_seed(5)
    scale, shift = noisy.sample_noise(got)
    torch.testing.assert_close(got, plain(x) * scale + shift)
    torch.testing.assert_close(noisy.running_var, plain.running_var)
    assert not torch.allclose(noisy(x), got)
    noisy.eval()
    plain.eval()
    plain.load_state_dict(noisy.state_dict())
    torch.testing.assert_close(noisy(x), plain(x))


def test_noisy_batch_norm_is_deterministic_under_manual_seed():
    def outputs(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        norm = build("batch_noisy", "dense")
        return torch.stack([norm(sample("dense", seed=s)) for s in range(2)])

    torch.testing.assert_close(outputs(0), outputs(0), rtol=0, atol=0)
    assert not torch.allclose(outputs(0), outputs(1))


def test_noisy_batch_norm_noise_has_the_drawn_ranges():
    norm = build("batch_noisy", "conv", noise_mean=0.3, noise_var=2.0)
    torch.manual_seed(0)
    draws = [norm.sample_noise(torch.zeros(8, C, 4, 4, dtype=torch.float64)) for _ in range(500)]
    scale = torch.stack([s for s, _ in draws])
    shift = torch.stack([m for _, m in draws])
    assert scale.shape[1:] == shift.shape[1:] == (1, C, 1, 1)  # shared by batch and positions
    assert shift.abs().max() <= 0.3 and shift.std() == pytest.approx(0.3 / math.sqrt(3), rel=0.05)
    assert scale.pow(2).min() >= 1.0 and scale.pow(2).max() <= 2.0
    assert scale.pow(2).mean() == pytest.approx(1.5, rel=0.02)


def test_noisy_none_has_no_gamma_beta_and_leaves_the_layer_its_bias():
    norm = build_norm("noisy_none", C, "dense", noise_mean=0.3, noise_var=2.0)
    assert norm.weight is None and norm.bias is None and list(norm.parameters()) == []
    from normstudy.models.common import normed_dense

    layer = normed_dense(3, C, norm)
    assert layer.layer.bias is not None
    with pytest.raises(ValueError, match="noise_var"):
        build_norm("noisy_none", C, "conv", noise_var=0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_noisy_none_is_the_identity_in_eval_mode(kind):
    norm = build_norm("noisy_none", C, kind).double().eval()
    x = sample(kind)
    torch.testing.assert_close(norm(x), x, rtol=0, atol=0)


def test_noisy_none_adds_the_same_noise_as_batch_noisy():
    """Santurkar et al. 2018 §2.1: "the same amount of noise" without BatchNorm. With the
    same seed, ``noisy_none`` draws exactly ``batch_noisy``'s shift and scale, and applies
    them to its input: ``sqrt(v_j) * x + m_j`` per channel j."""
    x = sample("conv")
    noisy = build_norm("noisy_none", C, "conv", noise_mean=0.3, noise_var=2.0).double()
    bn = build("batch_noisy", "conv", noise_mean=0.3, noise_var=2.0)
    torch.manual_seed(5)
    got = noisy(x)
    torch.manual_seed(5)
    scale, shift = bn.sample_noise(x)
    torch.testing.assert_close(got, x * scale + shift, rtol=0, atol=0)
    # by hand: the first C uniforms are the shifts in [-0.3, 0.3], the next C the variances
    g = torch.manual_seed(5)
    u_shift = torch.empty(C, dtype=torch.float64).uniform_(-0.3, 0.3, generator=g)
    u_var = torch.empty(C, dtype=torch.float64).uniform_(1.0, 2.0, generator=g)
    want = x * u_var.sqrt().view(1, C, 1, 1) + u_shift.view(1, C, 1, 1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not torch.allclose(noisy(x), got)  # drawn anew at every step


def predicted_batch_mean_drift(n_mu: float, n_sigma: float, beta: float) -> float:
    """Closed-form std over steps of a channel's batch mean after noisy BN on a fixed input.

    The BN output's batch mean is beta (x_hat has batch mean 0), so after the noise it is
    ``sqrt(v) * beta + m`` with ``m ~ U(-n_mu, n_mu)`` and ``v ~ U(1, n_sigma)``
    independent: Var = beta**2 Var(sqrt v) + n_mu**2 / 3, where E[v] = (1 + n_sigma) / 2
    and E[sqrt v] = 2/3 (n_sigma**1.5 - 1) / (n_sigma - 1).
    """
    mean_sqrt_v = 2 / 3 * (n_sigma**1.5 - 1) / (n_sigma - 1)
    var_sqrt_v = (1 + n_sigma) / 2 - mean_sqrt_v**2
    return math.sqrt(beta**2 * var_sqrt_v + n_mu**2 / 3)


@pytest.mark.parametrize(("n_mu", "n_sigma", "beta"), [(0.5, 1.25, 0.0), (0.5, 4.0, 1.0)])
def test_noisy_batch_norm_moves_each_channels_batch_mean_every_step(n_mu, n_sigma, beta):
    """Santurkar et al. 2018 §2.1: "this noise distribution changed at every step"; the
    batch mean of a channel on a fixed input drifts across steps as the formula predicts."""
    norm = build("batch_noisy", "conv", noise_mean=n_mu, noise_var=n_sigma)
    with torch.no_grad():
        norm.weight.fill_(1.0)
        norm.bias.fill_(beta)
    norm.train()
    x = sample("conv")
    torch.manual_seed(0)
    steps = 500
    means = torch.stack([norm(x).mean(dim=(0, 2, 3)) for _ in range(steps)])  # steps x C
    drift = means.std(dim=0).pow(2).mean().sqrt().item()  # pooled over the C channels
    # The sample std of n = steps * C independent draws has a relative standard error of
    # sqrt((kurtosis - 1) / (4 n)); both terms are uniform-like (kurtosis <= 3), so
    # 4 standard errors are at most 4 sqrt(1 / (2 n)) = 5.2% here.
    tolerance = 4 * math.sqrt(1 / (2 * steps * C))
    assert drift == pytest.approx(predicted_batch_mean_drift(n_mu, n_sigma, beta), rel=tolerance)


# --- per-example normalizers ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_layer_matches_torch_layer_norm_and_one_group_group_norm(kind, mode):
    norm = build("layer", kind, eps=1e-3)
    norm.train(mode == "train")
    x = sample(kind)
    normalised = F.layer_norm(x, x.shape[1:], eps=1e-3).numpy()
    np.testing.assert_allclose(run(norm, x), affine(norm, normalised), rtol=1e-10, atol=1e-12)
    ref = nn.GroupNorm(1, C, eps=1e-3).double()
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
        ref.bias.copy_(norm.bias)
    torch.testing.assert_close(norm(x), ref(x))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_group_matches_torch_group_norm(kind, mode):
    norm = build("group", kind, groups=3, eps=1e-4)
    ref = nn.GroupNorm(3, C, eps=1e-4).double()
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
        ref.bias.copy_(norm.bias)
    norm.train(mode == "train")
    ref.train(mode == "train")
    x = sample(kind)
    torch.testing.assert_close(norm(x), ref(x))
    grouped = x.numpy().reshape(x.shape[0], 3, -1)
    want = standardize(grouped, (2,), 1e-4).reshape(x.shape)
    np.testing.assert_allclose(run(norm, x), affine(norm, want), rtol=1e-10, atol=1e-12)


def test_group_count_must_divide_the_channels():
    with pytest.raises(ValueError, match="10 channels into groups=4") as error:
        build_norm("group", 10, "conv", groups=4)
    assert "1, 2, 5, 10" in str(error.value)


def test_group_norm_on_dense_needs_two_units_per_group():
    with pytest.raises(ValueError, match="groups=6 on a dense layer of 6 units"):
        build_norm("group", 6, "dense", groups=6)
    assert build_norm("group", 6, "conv", groups=6).groups == 6


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_instance_matches_torch_instance_norm(mode):
    norm = build("instance", "conv", eps=1e-4)
    ref = nn.InstanceNorm2d(C, affine=True, eps=1e-4).double()
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
        ref.bias.copy_(norm.bias)
    norm.train(mode == "train")
    ref.train(mode == "train")
    x = sample("conv")
    torch.testing.assert_close(norm(x), ref(x))
    want = affine(norm, standardize(x.numpy(), (2, 3), 1e-4))
    np.testing.assert_allclose(run(norm, x), want, rtol=1e-10, atol=1e-12)


def test_instance_rejects_one_by_one_maps_in_train_and_eval():
    norm = build("instance", "conv")
    for mode in (True, False):
        norm.train(mode)
        with pytest.raises(ValueError, match=r"more than one position.*\(4, 6, 1, 1\)"):
            norm(torch.ones(4, C, 1, 1, dtype=torch.float64))


# --- Weight Norm ----------------------------------------------------------------------


def weight_normed(kind: str, direction: torch.Tensor) -> NormedLayer:
    if kind == "conv":
        layer = nn.Conv2d(3, C, 2, bias=False).double()
    else:
        layer = nn.Linear(3, C, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(direction)
    return NormedLayer(layer, build("weight", kind))


@pytest.mark.parametrize("kind", KINDS)
def test_weight_norm_is_gamma_times_unit_direction(kind):
    g = torch.Generator().manual_seed(3)
    shape = (C, 3, 2, 2) if kind == "conv" else (C, 3)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    x = torch.randn((2, 3, 4, 4) if kind == "conv" else (5, 3), generator=g, dtype=torch.float64)
    block = weight_normed(kind, v)
    v_np = v.numpy()
    unit = v_np / np.sqrt((v_np.reshape(C, -1) ** 2).sum(1)).reshape((C,) + (1,) * (v.dim() - 1))
    if kind == "conv":
        y = F.conv2d(x, torch.from_numpy(unit)).numpy()
    else:
        y = x.numpy() @ unit.T
    np.testing.assert_allclose(run(block, x), affine(block.norm, y), rtol=1e-10, atol=1e-12)
    assert "layer.parametrizations.weight.original" in dict(block.named_parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_weight_norm_output_ignores_the_scale_of_v(kind):
    g = torch.Generator().manual_seed(4)
    v = torch.randn((C, 3, 2, 2) if kind == "conv" else (C, 3), generator=g, dtype=torch.float64)
    x = torch.randn((2, 3, 4, 4) if kind == "conv" else (5, 3), generator=g, dtype=torch.float64)
    outputs = [weight_normed(kind, v * scale)(x) for scale in (1e-3, 1.0, 1e3)]
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(outputs[2], outputs[1])
    plain = nn.Linear(3, C, bias=False).double() if kind == "dense" else None
    if plain is not None:
        with torch.no_grad():
            plain.weight.copy_(v * 1e3)
        assert not torch.allclose(plain(x), outputs[1])


def test_weight_norm_rejects_a_layer_of_another_width():
    with pytest.raises(ValueError, match="6 channels.*4 output channels"):
        NormedLayer(nn.Linear(3, 4), build_norm("weight", C, "dense"))


# --- BMLV, LMBV -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_bmlv_subtracts_batch_mean_and_divides_by_layer_rms(kind):
    norm = build("bmlv", kind, eps=1e-3, momentum=0.25)
    x = sample(kind)
    xn = x.numpy()
    centred = xn - xn.mean(batch_axes(xn), keepdims=True)
    want = centred / np.sqrt((centred**2).mean(layer_axes(xn), keepdims=True) + 1e-3)
    np.testing.assert_allclose(run(norm, x), affine(norm, want), rtol=1e-10, atol=1e-12)
    running = 0.25 * xn.mean(batch_axes(xn))
    np.testing.assert_allclose(norm.running_mean.numpy(), running, rtol=1e-12)

    norm.eval()
    x2 = sample(kind, seed=1).numpy()
    centred = x2 - channel(running, x2)
    want = centred / np.sqrt((centred**2).mean(layer_axes(x2), keepdims=True) + 1e-3)
    np.testing.assert_allclose(
        run(norm, torch.from_numpy(x2)), affine(norm, want), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(norm.running_mean.numpy(), running, rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_lmbv_subtracts_layer_mean_and_divides_by_batch_rms(kind):
    norm = build("lmbv", kind, eps=1e-3, momentum=0.25)
    x = sample(kind)
    xn = x.numpy()
    centred = xn - xn.mean(layer_axes(xn), keepdims=True)
    batch_ms = (centred**2).mean(batch_axes(xn))
    want = centred / np.sqrt(channel(batch_ms, xn) + 1e-3)
    np.testing.assert_allclose(run(norm, x), affine(norm, want), rtol=1e-10, atol=1e-12)
    running = 0.75 + 0.25 * batch_ms
    np.testing.assert_allclose(norm.running_var.numpy(), running, rtol=1e-12)

    norm.eval()
    x2 = sample(kind, seed=1).numpy()
    centred = x2 - x2.mean(layer_axes(x2), keepdims=True)
    want = centred / np.sqrt(channel(running, x2) + 1e-3)
    np.testing.assert_allclose(
        run(norm, torch.from_numpy(x2)), affine(norm, want), rtol=1e-10, atol=1e-12
    )


# --- PreLayerNorm, RegNorm, PreRegNorm ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_prelayer_centres_the_layer_input_and_divides_the_output_by_its_rms(kind):
    norm = build("prelayer", kind, eps=1e-4)
    x = sample(kind)
    xn = x.numpy()
    np.testing.assert_allclose(
        norm.pre_affine(x).numpy(), xn - xn.mean(layer_axes(xn), keepdims=True), rtol=1e-12
    )
    layer = nn.Conv2d(C, C, 3, padding=1) if kind == "conv" else nn.Linear(C, C)
    layer = layer.double()
    block = NormedLayer(layer, norm)
    y = layer(torch.from_numpy(xn - xn.mean(layer_axes(xn), keepdims=True))).detach().numpy()
    want = y / np.sqrt((y**2).mean(layer_axes(y), keepdims=True) + 1e-4)
    np.testing.assert_allclose(run(block, x), affine(norm, want), rtol=1e-10, atol=1e-12)
    assert not np.allclose(run(block, x), run(norm, layer(x)))


@pytest.mark.parametrize("kind", KINDS)
def test_regnorm_is_layer_norm_with_squared_batch_mean_regularizer(kind):
    norm = build("regnorm", kind, eps=1e-4)
    assert norm.regularizer() is None
    x = sample(kind).requires_grad_()
    x_hat = standardize(x.detach().numpy(), layer_axes(x.detach().numpy()), 1e-4)
    np.testing.assert_allclose(run(norm, x), affine(norm, x_hat), rtol=1e-10, atol=1e-12)
    want = hand_regnorm_term(x_hat, "neuron", "mean")  # the default: per neuron, averaged
    assert want > 0.01
    assert norm.regularizer().item() == pytest.approx(want, rel=1e-10)
    norm.regularizer().backward()
    assert x.grad.abs().sum() > 0
    x = x.detach()

    symmetric = torch.cat([x, -x])
    norm(symmetric)
    assert norm.regularizer().item() == pytest.approx(0.0, abs=1e-20)

    norm.eval()
    assert norm.regularizer() is None
    norm(x)
    norm.train()
    assert norm.regularizer() is None


def hand_regnorm_term(x_hat: np.ndarray, units: str, reduce: str) -> float:
    """The RegNorm term by loops: squared batch means per neuron (channel and position)
    or per channel, summed or averaged ("Is Batch Norm unique?" §3.2, appendix B)."""
    n = x_hat.shape[0]
    if units == "neuron":
        squares = [
            (sum(x_hat[b][unit] for b in range(n)) / n) ** 2 for unit in np.ndindex(x_hat.shape[1:])
        ]
    else:
        squares = [x_hat[:, c].mean() ** 2 for c in range(x_hat.shape[1])]
    return float(sum(squares) if reduce == "sum" else sum(squares) / len(squares))


@pytest.mark.parametrize("name", ["regnorm", "preregnorm"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("units", ["neuron", "channel"])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_regnorm_term_options_match_a_hand_computation(name, kind, units, reduce):
    norm = build(name, kind, reg_units=units, reg_reduce=reduce)
    x = sample(kind)
    norm(x)
    x_hat = norm.normalize(x).detach().numpy()
    want = hand_regnorm_term(x_hat, units, reduce)
    assert want > 1e-3
    assert norm.regularizer().item() == pytest.approx(want, rel=1e-10)


def test_the_papers_regnorm_term_exceeds_the_per_channel_mean_by_the_neuron_count():
    """On a conv layer of M = C*H*W neurons the paper's sum over neurons and a mean over
    channels differ by orders of magnitude, so ``reg_strength`` means different things."""
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 16, 3, padding=1).double()
    x = layer(torch.randn(32, 3, 8, 8, dtype=torch.float64))
    paper = build_norm("regnorm", 16, "conv", reg_reduce="sum").double()
    ours = build_norm("regnorm", 16, "conv", reg_units="channel", reg_reduce="mean").double()
    paper(x), ours(x)
    assert paper.regularizer() / ours.regularizer() > 100


def test_regnorm_terms_are_summed_and_survive_deepcopy():
    model = nn.Sequential(
        NormedLayer(nn.Linear(C, C).double(), build("regnorm", "dense")),
        NormedLayer(nn.Linear(C, C).double(), build("preregnorm", "dense")),
    )
    x = sample("dense")
    model(x)
    terms = [block.norm.regularizer() for block in model]
    torch.testing.assert_close(collect_regularizers(model), terms[0] + terms[1])
    clone = copy.deepcopy(model)
    assert collect_regularizers(clone) is None
    torch.testing.assert_close(clone(x), model(x))


@pytest.mark.parametrize("kind", KINDS)
def test_preregnorm_is_prelayer_with_the_regnorm_term(kind):
    norm = build("preregnorm", kind, eps=1e-4)
    prelayer = build("prelayer", kind, eps=1e-4)
    x = sample(kind)
    torch.testing.assert_close(norm.pre_affine(x), prelayer.pre_affine(x))
    torch.testing.assert_close(norm(x), prelayer(x))
    x_hat = x.numpy() / np.sqrt((x.numpy() ** 2).mean(layer_axes(x.numpy()), keepdims=True) + 1e-4)
    want = hand_regnorm_term(x_hat, "neuron", "mean")
    assert norm.regularizer().item() == pytest.approx(want, rel=1e-10)


# --- Lp normalization -----------------------------------------------------------------------


def lp_moment(c: np.ndarray, p: float) -> np.ndarray:
    if math.isinf(p):
        return np.abs(c).max(batch_axes(c))
    return (np.abs(c) ** p).mean(batch_axes(c))


def lp_scale(moment: np.ndarray, p: float, eps: float) -> np.ndarray:
    return moment + eps if math.isinf(p) else (moment + eps) ** (1 / p)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("p", [1, 2, 3, math.inf])
@pytest.mark.parametrize("centered", [True, False])
def test_lp_divides_by_the_batch_lp_scale(kind, p, centered):
    eps, momentum = 1e-3, 0.5
    norm = build("lp", kind, p=p, centered=centered, eps=eps, momentum=momentum)
    x = sample(kind)
    xn = x.numpy()
    mean = xn.mean(batch_axes(xn)) if centered else np.zeros(C)
    c = xn - channel(mean, xn)
    moment = lp_moment(c, p)
    want = c / channel(lp_scale(moment, p, eps), xn)
    np.testing.assert_allclose(run(norm, x), affine(norm, want), rtol=1e-10, atol=1e-12)

    norm.eval()
    running_mean = momentum * mean
    running_moment = (1 - momentum) + momentum * moment
    x2 = sample(kind, seed=1).numpy()
    c2 = x2 - channel(running_mean, x2) if centered else x2
    want = c2 / channel(lp_scale(running_moment, p, eps), x2)
    np.testing.assert_allclose(
        run(norm, torch.from_numpy(x2)), affine(norm, want), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
def test_centred_l2_is_batch_norm_in_training(kind):
    norm = build("lp", kind, p=2, centered=True, eps=1e-3)
    x = sample(kind)
    want = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=1e-3)
    torch.testing.assert_close(norm(x), want)


def test_lp_accepts_inf_as_string_or_float():
    assert build_norm("lp", C, "conv", p="inf").p == math.inf
    assert build_norm("lp", C, "conv", p=float("inf")).p == math.inf
    assert build_norm("lp", C, "conv", p=3.0).p == 3


@pytest.mark.parametrize("p", [4, 0, "two", True, 2.5, None])
def test_lp_rejects_other_orders_naming_the_valid_ones(p):
    with pytest.raises(ValueError, match="1, 2, 3 or 'inf'"):
        build_norm("lp", C, "dense", p=p)


# --- every normalizer in a layer ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(EXPECTED - {"none", "noisy_none"}))
def test_every_normalizer_trains_gamma_and_beta_through_a_normed_layer(name, kind):
    if kind not in NORM_CLASSES.get(name).supports:
        pytest.skip(f"{name} does not support {kind}")
    torch.manual_seed(0)
    options = {"groups": 2} if name == "group" else {}
    norm = make_norm_factory(name, **options)(C, kind)
    width = norm.num_features
    layer = (
        nn.Conv2d(3, width, 3, bias=False) if kind == "conv" else nn.Linear(3, width, bias=False)
    )
    block = NormedLayer(layer, norm)
    x = torch.randn((4, 3, 5, 5) if kind == "conv" else (4, 3)) + 1.0
    out = block(x)
    loss = (out * torch.randn_like(out)).sum()
    regularizer = collect_regularizers(block)
    assert (regularizer is not None) == (name in {"regnorm", "preregnorm"})
    if regularizer is not None:
        loss = loss + regularizer
    loss.backward()
    for param in (norm.weight, norm.bias):
        assert param.grad is not None and param.grad.abs().sum() > 0
    params = dict(block.named_parameters())
    direction = params.get("layer.weight", params.get("layer.parametrizations.weight.original"))
    assert direction.grad is not None and direction.grad.abs().sum() > 0
