"""Tests of normstudy.models: shapes, parameter counts, depth rules, normalizer placement,
residual connections and initialization."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normstudy.models import (
    BUILDERS,
    build_model,
    count_normalizers,
    depth_layers,
    initialize,
)
from normstudy.models.common import BasicBlock, NormSchedule, ProjectionShortcut
from normstudy.models.lstm import rows_as_sequence
from normstudy.models.vgg import convs_per_stage
from normstudy.norms import NORM_CLASSES, collect_regularizers, make_norm_factory
from normstudy.norms.base import Normalizer, NormedLayer
from normstudy.registry import UnknownNameError

DIGITS, MNIST, CIFAR, VECTORS = (1, 8, 8), (1, 28, 28), (3, 32, 32), (1000,)


class Standardize(Normalizer):
    """Per-example standardisation over all non-batch dims (a Layer-Norm-like test norm).

    It starts at gamma 0.5 and beta 0.25, so the tests see whether initialization resets them.
    """

    def __init__(self, num_features: int, kind: str) -> None:
        super().__init__(num_features, kind)
        with torch.no_grad():
            self.weight.fill_(0.5)
            self.bias.fill_(0.25)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dims, keepdim=True)
        var = x.var(dims, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + 1e-5)


def standardize(channels: int, kind: str) -> Normalizer:
    return Standardize(channels, kind)


def no_norm(channels: int, kind: str) -> None:
    return None


NONE = make_norm_factory("none") if "none" in NORM_CLASSES else no_norm

TINY = {
    "mlp": {"depth": 2, "width": 8},
    "resnet": {"depth": 8, "width": 0.25},
    "wrn": {"depth": 8, "width": 1},
    "vgg": {"depth": 6, "width": 0.0625},
    "lstm": {"depth": 1, "width": 8},
}
SHAPES = {
    "mlp": [DIGITS, MNIST, CIFAR, VECTORS],
    "resnet": [DIGITS, MNIST, CIFAR],
    "wrn": [DIGITS, MNIST, CIFAR],
    "vgg": [DIGITS, MNIST, CIFAR],
    "lstm": [DIGITS, MNIST, CIFAR, (5, 3)],
}
CASES = [(name, shape) for name, shapes in SHAPES.items() for shape in shapes]


def tiny(name: str, input_shape=DIGITS, norm=standardize, num_classes=10, **kwargs) -> nn.Module:
    config = {**TINY[name], **kwargs}
    return build_model(name, input_shape=input_shape, num_classes=num_classes, norm=norm, **config)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batch(input_shape, n=3, seed=0) -> torch.Tensor:
    return torch.randn((n, *input_shape), generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_models():
    assert BUILDERS.names() == ["lstm", "lstm_text", "mlp", "resnet", "vgg", "wrn"]


@pytest.mark.parametrize("norm", [standardize, NONE], ids=["norm", "none"])
@pytest.mark.parametrize(("name", "input_shape"), CASES)
def test_forward_backward_on_dataset_shapes(name, input_shape, norm):
    torch.manual_seed(0)
    model = tiny(name, input_shape, norm=norm, num_classes=7)
    out = model(batch(input_shape, n=3))
    assert out.shape == (3, 7)
    F.cross_entropy(out, torch.tensor([0, 3, 6])).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all()


def test_input_shape_may_hold_numpy_ints_but_not_floats():
    model = tiny("resnet", tuple(np.array(DIGITS)))
    assert model(batch(DIGITS)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"input_shape must be .*\(1, 8.0, 8\)"):
        tiny("resnet", (1, 8.0, 8))


@pytest.mark.parametrize("name", ["resnet", "wrn", "vgg"])
def test_image_models_reject_vector_inputs(name):
    with pytest.raises(ValueError, match=r"needs image inputs .*\(1000,\)"):
        tiny(name, VECTORS)


def test_lstm_rejects_vector_inputs():
    with pytest.raises(ValueError, match=r"lstm needs sequences .*\(1000,\)"):
        tiny("lstm", VECTORS)


def resnet_params(depth, width=16, in_channels=3, classes=10, shortcut="B", skip=True):
    """Hand count: every conv is followed by a normalizer (2 params per channel)."""

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + 2 * c_out

    n = (depth - 2) // 6
    total = conv(in_channels, width, 3)
    c_in = width
    for c in (width, 2 * width, 4 * width):
        for _ in range(n):
            total += conv(c_in, c, 3) + conv(c, c, 3)
            if c_in != c and shortcut == "B" and skip:
                total += conv(c_in, c, 1)
            c_in = c
    return total + c_in * classes + classes


@pytest.mark.parametrize(
    ("depth", "shortcut", "expected"),
    [(20, "B", 272_474), (110, "B", 1_730_714), (20, "A", 269_722), (110, "A", 1_727_962)],
)
def test_resnet_parameter_counts(depth, shortcut, expected):
    """Option B: open_lth's cifar_resnet test figures; option A: He et al.'s 0.27M / 1.7M."""
    model = build_model(
        "resnet",
        input_shape=CIFAR,
        num_classes=10,
        norm=standardize,
        depth=depth,
        shortcut=shortcut,
    )
    assert n_params(model) == expected == resnet_params(depth, shortcut=shortcut)


def wrn_params(depth, k, classes=10):
    def conv(c_in, c_out, kernel):
        return c_in * c_out * kernel * kernel + 2 * c_out

    n = (depth - 2) // 6
    total, c_in = conv(3, 16, 3), 16
    for c in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += conv(c_in, c, 3) + conv(c, c, 3) + (conv(c_in, c, 1) if c_in != c else 0)
            c_in = c
    return total + c_in * classes + classes


def test_wrn_26_and_28_are_the_same_network_and_counts_match():
    counts = [
        n_params(build_model("wrn", input_shape=CIFAR, num_classes=10, norm=standardize, depth=d))
        for d in (26, 28)
    ]
    assert counts == [1_468_058, 1_468_058] == [wrn_params(26, 2)] * 2


def test_wrn_count_formula_matches_zagoruyko_figures():
    """Zagoruyko & Komodakis 2016 Table 1: WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-28-10 36.5M."""
    assert n_params(
        build_model("wrn", input_shape=CIFAR, num_classes=10, norm=standardize, depth=16, width=8)
    ) == wrn_params(16, 8)
    for depth, k, millions in [(40, 4, 8.9), (16, 8, 11.0), (28, 10, 36.5)]:
        assert wrn_params(depth, k) / 1e6 == pytest.approx(millions, abs=0.06)


@pytest.mark.parametrize(
    ("name", "depth", "rule"),
    [
        ("resnet", 15, "6n+2"),
        ("resnet", 2, "6n+2"),
        ("resnet", 20.0, "6n+2"),
        ("wrn", 27, "6n+4"),
        ("wrn", 25, "6n+2"),
        ("vgg", 5, ">= 6"),
        ("mlp", 0, ">= 1"),
        ("lstm", 0, ">= 1"),
    ],
)
def test_invalid_depth_states_the_rule(name, depth, rule):
    with pytest.raises(ValueError, match=rf"{name} depth must be .*{re.escape(rule)}.*got {depth}"):
        tiny(name, depth=depth)


@pytest.mark.parametrize(
    ("name", "width"), [("wrn", 2.5), ("mlp", 0), ("lstm", -1), ("resnet", 0.01), ("vgg", 0)]
)
def test_invalid_width_fails(name, width):
    with pytest.raises(ValueError, match=rf"{name} width"):
        tiny(name, width=width)


@pytest.mark.parametrize("every", [-1, 1.5, True])
def test_invalid_norm_every_fails(every):
    with pytest.raises(ValueError, match="norm_every must be an integer >= 0"):
        tiny("mlp", norm_every=every)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="lstm, lstm_text, mlp, resnet, vgg, wrn"):
        build_model("resnet50", input_shape=CIFAR, num_classes=10, norm=standardize)


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ValueError, match=r"no option\(s\) widen; valid options: shortcut"):
        tiny("resnet", widen=2)
    with pytest.raises(ValueError, match=r"no option\(s\) shortcut; valid options: none"):
        tiny("mlp", shortcut="B")


def test_invalid_option_value_lists_valid_ones():
    with pytest.raises(
        ValueError, match=r"shortcut' = 'C' must be one of A, B .*A: strided identity.*B: 1x1 conv"
    ):
        tiny("resnet", shortcut="C")
    with pytest.raises(ValueError, match="'residual' = 'yes' must be true or false"):
        tiny("vgg", residual="yes")


def test_unknown_gamma_init_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown gamma_init 'normal'; .*ones, uniform"):
        tiny("mlp", gamma_init="normal")
    with pytest.raises(ValueError, match="ones, uniform"):
        initialize(nn.Linear(2, 2), "zeros")


@pytest.mark.parametrize(
    ("name", "config", "expected"),
    [
        # 10 hidden layers: layers i with i % k == 0.
        ("mlp", {"depth": 10}, {1: 10, 2: 5, 5: 2, 0: 0}),
        # 10 convs (depth 11).
        ("vgg", {"depth": 11}, {1: 10, 2: 5, 5: 2, 0: 0}),
        # ResNet-20: 19 main-path convs; the two projection shortcuts follow the second
        # conv of their block, layers 9 and 15 along depth.
        ("resnet", {"depth": 20}, {1: 21, 2: 9, 5: 4, 0: 0}),
        # WRN-8-2: 7 main-path convs; three projections follow layers 3, 5 and 7.
        ("wrn", {"depth": 8, "width": 2}, {1: 10, 2: 3, 5: 2, 0: 0}),
        # projection = layer 1, LSTM state = layer 2.
        ("lstm", {}, {1: 2, 2: 1, 5: 0, 0: 0}),
    ],
)
def test_norm_every_counts(name, config, expected):
    for every, count in expected.items():
        model = tiny(name, norm_every=every, **config)
        assert count_normalizers(model) == count, f"norm_every={every}"
        main = depth_layers(model)
        assert [layer.norm is not None for layer in main] == [
            every > 0 and i % every == 0 for i in range(1, len(main) + 1)
        ]


def test_depth_layers_follow_depth_and_leave_out_projections():
    model = tiny("resnet", depth=20)
    assert len(depth_layers(model)) == 19
    projections = [m for m in model.modules() if isinstance(m, ProjectionShortcut)]
    assert len(projections) == 2
    all_layers = [m for m in model.modules() if isinstance(m, NormedLayer)]
    assert len(all_layers) == 21
    assert len(depth_layers(tiny("vgg", depth=38))) == 37


@pytest.mark.parametrize("name", sorted(TINY))
def test_layer_bias_iff_no_normalizer_follows(name):
    for norm, every in [(standardize, 2), (standardize, 1), (NONE, 1)]:
        model = tiny(name, norm=norm, norm_every=every)
        layers = [m for m in model.modules() if isinstance(m, NormedLayer)]
        assert layers
        for layer in layers:
            assert (layer.layer.bias is None) == (layer.norm is not None)
    mixed = tiny(name, norm_every=2)
    assert any(m.norm is None for m in mixed.modules() if isinstance(m, NormedLayer))


@pytest.mark.parametrize(("name", "input_shape"), CASES)
def test_head_is_the_last_layer(name, input_shape):
    model = tiny(name, input_shape, num_classes=5)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 5
    assert list(model.modules())[-1] is model.head
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(out))
    out = model(batch(input_shape))
    assert len(seen) == 1 and seen[0] is out


@pytest.mark.parametrize(("name", "input_shape"), CASES)
def test_modules_are_registered_in_forward_order(name, input_shape):
    model = tiny(name, input_shape, **({"depth": 14} if name == "resnet" else {}))
    registered = [m for m in model.modules() if isinstance(m, NormedLayer)]
    called = []
    for layer in registered:
        layer.register_forward_hook(lambda module, args, out: called.append(module))
    model(batch(input_shape))
    assert [id(m) for m in called] == [id(m) for m in registered]


def test_basic_block_forward_with_and_without_skip():
    torch.manual_seed(0)
    x = batch((4, 6, 6))
    for skip in (True, False):
        block = BasicBlock(NormSchedule(standardize, 1), 4, 8, 2, skip, "B")
        initialize(block, "uniform")
        body = block.conv2(F.relu(block.conv1(x)))
        expected = F.relu(body + block.shortcut(x)) if skip else F.relu(body)
        assert (block.shortcut is None) == (not skip)
        torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("name", ["resnet", "wrn"])
def test_skip_off_removes_residuals(name):
    config = {"depth": 14, "width": 1 if name == "wrn" else 0.25}
    with_skip = tiny(name, CIFAR, shortcut="A", **config)
    plain = tiny(name, CIFAR, shortcut="A", skip=False, **config)
    assert n_params(plain) == n_params(with_skip)
    plain.load_state_dict(with_skip.state_dict())
    x = batch(CIFAR)
    assert not torch.allclose(plain(x), with_skip(x))

    projected = tiny(name, CIFAR, shortcut="B", **config)
    projection_params = sum(
        n_params(m) for m in projected.modules() if isinstance(m, ProjectionShortcut)
    )
    assert projection_params > 0
    plain_b = tiny(name, CIFAR, shortcut="B", skip=False, **config)
    assert n_params(plain_b) == n_params(projected) - projection_params == n_params(plain)


def test_resnet20_plain_has_option_a_count():
    plain = build_model(
        "resnet", input_shape=CIFAR, num_classes=10, norm=standardize, depth=20, skip=False
    )
    assert n_params(plain) == 269_722 == resnet_params(20, skip=False)


def test_vgg_residual_changes_forward_but_not_parameters():
    config = {"depth": 16, "width": 0.0625}
    plain = tiny("vgg", CIFAR, **config)
    residual = tiny("vgg", CIFAR, residual=True, **config)
    switched_off = tiny("vgg", CIFAR, residual=True, skip=False, **config)
    assert n_params(plain) == n_params(residual) == n_params(switched_off)
    plain.load_state_dict(residual.state_dict())
    switched_off.load_state_dict(residual.state_dict())
    x = batch(CIFAR)
    assert not torch.allclose(plain(x), residual(x))
    torch.testing.assert_close(switched_off(x), plain(x))


@pytest.mark.parametrize(
    ("depth", "plan"),
    [
        (6, [1, 1, 1, 1, 1]),
        (11, [2] * 5),
        (16, [3] * 5),
        (19, [3, 3, 4, 4, 4]),
        (38, [7, 7, 7, 8, 8]),
    ],
)
def test_vgg_depth_maps_to_convs_per_stage(depth, plan):
    assert convs_per_stage(depth) == plan
    model = tiny("vgg", depth=depth, residual=True)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == depth - 1


@pytest.mark.parametrize(("input_shape", "pools"), [(DIGITS, 3), (MNIST, 4), (CIFAR, 4)])
def test_vgg_never_pools_below_one_pixel(input_shape, pools):
    model = tiny("vgg", input_shape)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools


def gammas_and_betas(model):
    norms = [m for m in model.modules() if isinstance(m, Normalizer)]
    assert norms
    return torch.cat([n.weight for n in norms]), torch.cat([n.bias for n in norms])


@pytest.mark.parametrize("name", sorted(TINY))
def test_gamma_init(name):
    torch.manual_seed(0)
    gamma, beta = gammas_and_betas(tiny(name, gamma_init="uniform"))
    assert ((gamma >= 0) & (gamma <= 1)).all()
    assert gamma.unique().numel() > 1
    assert (beta == 0).all()
    gamma, beta = gammas_and_betas(tiny(name, gamma_init="ones"))
    assert (gamma == 1).all() and (beta == 0).all()


def test_he_normal_init_of_layers_and_head():
    """Frankle et al. 2020: He normal, std = sqrt(2 / fan_in); biases zero."""
    torch.manual_seed(0)
    mlp = build_model("mlp", input_shape=VECTORS, num_classes=300, norm=NONE, depth=2, width=400)
    for layer, fan_in in [(mlp.hidden[0].layer, 1000), (mlp.hidden[1].layer, 400), (mlp.head, 400)]:
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
        assert layer.weight.mean().abs().item() < 0.01
        assert (layer.bias == 0).all()
    resnet = tiny("resnet", depth=8, width=4)
    conv = resnet.blocks[-1].conv2.layer
    assert conv.weight.shape == (256, 256, 3, 3)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.03)


class UnitRows(nn.Module):
    def forward(self, v):
        return v / v.norm(dim=1, keepdim=True)


class DirectionOnly(Standardize):
    """Parametrizes its layer's weight as v / ||v|| (no right_inverse): v is drawn He normal."""

    def attach(self, layer):
        nn.utils.parametrize.register_parametrization(layer, "weight", UnitRows())


class TorchWeightNorm(Standardize):
    """Reparameterises its layer with torch's weight_norm (original0, original1)."""

    def attach(self, layer):
        nn.utils.parametrizations.weight_norm(layer)


@pytest.mark.parametrize("norm_class", [DirectionOnly, TorchWeightNorm])
def test_he_normal_init_through_a_weight_parametrization(norm_class):
    torch.manual_seed(0)
    model = build_model(
        "mlp",
        input_shape=VECTORS,
        num_classes=2,
        norm=lambda c, kind: norm_class(c, kind),
        depth=1,
        width=300,
    )
    layer = model.hidden[0].layer
    assert nn.utils.parametrize.is_parametrized(layer, "weight")
    raw = getattr(layer.parametrizations.weight, "original", layer.weight)
    assert raw.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.03)


def test_initialization_is_seeded_by_the_caller():
    states = []
    for _ in range(2):
        torch.manual_seed(3)
        states.append(tiny("resnet", gamma_init="uniform").state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_rows_as_sequence():
    images = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    seq = rows_as_sequence(images)
    assert seq.shape == (2, 4, 15)
    torch.testing.assert_close(seq[1, 2], images[1, :, 2, :].reshape(-1))


def test_lstm_reads_images_as_rows():
    torch.manual_seed(0)
    from_images = tiny("lstm", (3, 4, 5))
    torch.manual_seed(0)
    from_sequences = tiny("lstm", (4, 15))
    x = batch((3, 4, 5))
    torch.testing.assert_close(from_images(x), from_sequences(rows_as_sequence(x)))


def test_lstm_projection_is_normalised_over_all_time_steps():
    shapes = []

    class Recording(Standardize):
        def normalize(self, x):
            shapes.append(tuple(x.shape))
            return super().normalize(x)

    model = tiny("lstm", (6, 3), norm=lambda c, kind: Recording(c, kind), width=8)
    model(batch((6, 3), n=4))
    assert shapes == [(4 * 6, 8), (4, 8)]


# The real normalizers, once registered: every model x every normalizer.

KINDS_OF_MODEL = {
    "mlp": {"dense"},
    "lstm": {"dense"},
    "resnet": {"conv"},
    "wrn": {"conv"},
    "vgg": {"conv"},
}
REAL_NORMS = [n for n in NORM_CLASSES.names() if NORM_CLASSES.get(n) is not None]
# Channel counts divisible by Group Norm's default groups, and conv maps of at least 2x2 at
# every depth (Instance Norm cannot normalise a 1x1 map).
REAL_CONFIG = {
    "mlp": {"width": 16},
    "lstm": {"width": 16},
    "resnet": {"width": 0.5},
    "wrn": {"width": 1},
    "vgg": {"width": 0.125},
}
REAL_SHAPE = {
    "mlp": DIGITS,
    "lstm": DIGITS,
    "resnet": (3, 16, 16),
    "wrn": (3, 16, 16),
    "vgg": CIFAR,
}


@pytest.mark.parametrize("norm_name", REAL_NORMS)
@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_with_every_registered_normalizer(name, norm_name):
    torch.manual_seed(0)
    factory = make_norm_factory(norm_name)
    supports = NORM_CLASSES.get(norm_name).supports
    if not KINDS_OF_MODEL[name] <= supports:
        missing = sorted(KINDS_OF_MODEL[name] - supports)[0]
        with pytest.raises(ValueError, match=rf"{name}.*{norm_name}.*cannot normalise {missing}"):
            tiny(name, norm=factory)
        return
    shape = REAL_SHAPE[name]
    model = tiny(name, shape, norm=factory, gamma_init="uniform", **REAL_CONFIG[name])
    model.train()
    out = model(batch(shape, n=4))
    loss = F.cross_entropy(out, torch.tensor([0, 1, 2, 3]))
    regularizer = collect_regularizers(model)
    if regularizer is not None:
        loss = loss + regularizer
    loss.backward()
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    assert any(isinstance(m, Normalizer) for m in model.modules())
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), pname
    model.eval()
    with torch.no_grad():
        assert model(batch(shape, n=2)).shape == (2, 10)


# --- lstm_text: Torri 2022 §3.1's sentiment model on token ids ---


def text_model(norm="batch", vocab_size=30, **kwargs):
    kwargs.setdefault("width", 6)
    kwargs.setdefault("embedding_dim", 5)
    return build_model(
        "lstm_text",
        input_shape=(7,),
        num_classes=2,
        norm=make_norm_factory(norm),
        vocab_size=vocab_size,
        **kwargs,
    )


def token_batch(lengths, steps=7, vocab_size=30, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros((len(lengths), steps), dtype=torch.int64)
    for row, length in enumerate(lengths):
        x[row, :length] = torch.randint(1, vocab_size, (length,), generator=generator)
    return x


def test_lstm_text_defaults_give_torris_scale():
    """Torri: 5.5M parameters, 604 of them BN; with a 26.9k-word vocabulary."""
    torch.manual_seed(0)
    model = text_model(vocab_size=26_900, width=None, embedding_dim=200)
    norm = sum(p.numel() for m in model.modules() if isinstance(m, Normalizer)
               for p in m.parameters())  # fmt: skip
    assert norm == 604
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(5.5e6, rel=0.01)


def test_lstm_text_ignores_padding_in_train_mode():
    """Extra padding changes neither the embedding norm's batch statistics nor the read-out."""
    torch.manual_seed(0)
    model = text_model().train()
    x = token_batch([3, 7, 1, 5])
    wider = torch.cat([x, torch.zeros((4, 4), dtype=torch.int64)], dim=1)
    torch.testing.assert_close(model(x), model(wider))


def test_lstm_text_reads_the_state_at_each_true_length():
    torch.manual_seed(0)
    model = text_model(norm="none").eval()
    x = token_batch([3, 7, 1])
    with torch.no_grad():
        together = model(x)
        for row, length in enumerate([3, 7, 1]):
            outputs, _ = model.lstm(model.embedding(x[row : row + 1, :length]))
            torch.testing.assert_close(together[row], model.head(outputs[0, -1]))


def test_lstm_text_starts_from_pretrained_embeddings():
    vectors = torch.randn(30, 5)
    model = text_model(embeddings=vectors)
    assert torch.equal(model.embedding.weight.detach(), vectors)
    with pytest.raises(ValueError, match="set the model option embedding_dim to 5"):
        text_model(embeddings=vectors, embedding_dim=8)


def test_lstm_text_norm_placement_and_bn_only_training():
    from normstudy.freeze import apply_freeze_policy

    model = text_model(norm_every=2)
    assert model.embedding_norm is None and model.state_norm is not None
    model = text_model()
    trainable = apply_freeze_policy(model, "norm")
    assert sum(p.numel() for p in trainable) == 2 * (5 + 6)
    assert not model.embedding.weight.requires_grad


def test_text_and_image_models_refuse_each_others_inputs():
    with pytest.raises(ValueError, match="needs a text \\(token\\) dataset: sentiment140"):
        build_model("lstm_text", input_shape=(7,), num_classes=2, norm=make_norm_factory("none"))
    with pytest.raises(ValueError, match="cannot read token ids.*text models: lstm_text"):
        build_model(
            "lstm", input_shape=(7,), num_classes=2, norm=make_norm_factory("none"), vocab_size=30
        )


def test_planner_parameter_estimate_of_lstm_text_is_close():
    from normstudy.catalog import DATASETS
    from normstudy.grid import estimated_parameters

    config = {"model": "lstm_text", "dataset": "sentiment140", "depth": None, "width": None}
    estimate = estimated_parameters({**config, "model_options": {}})
    model = text_model(
        vocab_size=DATASETS["sentiment140"].vocab_size, width=None, embedding_dim=200
    )
    assert estimate == pytest.approx(sum(p.numel() for p in model.parameters()), rel=0.01)
