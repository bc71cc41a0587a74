"""The cost estimate: grouping, the hours arithmetic, FLOP counts, stand-in data, the CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from normstudy.cluster import measured_minutes
from normstudy.config import resolve_cell_config
from normstudy.data.torchvision_sets import stand_in_splits
from normstudy.epochs import Plan, batch_bounds
from normstudy.estimate import cell_cost, cost_groups, estimate_plan, measure_group
from normstudy.flops import flops_per_example
from normstudy.grid import plan_studies, training_examples

MLP = {"dataset": "digits", "model": "mlp", "depth": 2, "width": 16, "epochs": 3}


def workflow_config(**studies) -> dict:
    return {"scale": "demo", "defaults": MLP, "studies": studies}


def test_cells_that_cost_the_same_per_step_share_a_group():
    plan = plan_studies(
        workflow_config(
            s={"grid": {"norm": ["batch", "none"], "lr": [0.1, 0.2], "seed": [0, 1]}},
            t={"grid": {"norm": ["batch"], "batch_size": [128, 64]}},
        )
    )
    groups = sorted(len(ids) for ids in cost_groups(plan).values())
    assert groups == [1, 4, 4]  # t's batch 128 cell is one of s's


def test_cell_cost_is_steps_times_step_cost_plus_evaluations():
    config = resolve_cell_config({**MLP, "epochs": 7, "batch_size": 50})
    measured = {
        "num_train": 1000,
        "num_eval": 300,
        "step_seconds": 0.5,
        "eval_seconds_per_example": 0.01,
        "train_gflops_per_example": 3.0,
        "eval_gflops_per_example": 1.0,
    }
    # 7 epochs x 20 steps x 0.5 s + 7 evaluations x 300 examples x 0.01 s;
    # 140 steps x 50 examples x 3 GFLOP + 2100 evaluated examples x 1 GFLOP
    hours, pflop = cell_cost(config, measured)
    assert hours == pytest.approx((70 + 21) / 3600)
    assert pflop == pytest.approx((140 * 50 * 3 + 2100) / 1e6)
    fixed = resolve_cell_config({**config, "steps": 45})
    # 45 steps run over ceil(45 / 20) = 3 epochs, each ending in an evaluation
    hours, pflop = cell_cost(fixed, measured)
    assert hours == pytest.approx((22.5 + 9) / 3600)
    assert pflop == pytest.approx((45 * 50 * 3 + 900) / 1e6)


def test_measured_flops_of_an_mlp_match_the_hand_count():
    config = resolve_cell_config({**MLP, "norm": "none"})
    measured = measure_group(config, steps=1, threads=1)
    layers = [(64, 16), (16, 16), (16, 10)]
    forward = sum(2 * fan_in * fan_out for fan_in, fan_out in layers)
    weight_grads = forward
    input_grads = forward - 2 * 64 * 16  # no gradient for the input itself
    assert measured["train_gflops_per_example"] * 1e9 == forward + weight_grads + input_grads
    assert measured["eval_gflops_per_example"] * 1e9 == forward
    assert measured["step_seconds"] > 0 and math.isfinite(measured["step_seconds"])
    assert measured["eval_seconds_per_example"] > 0
    assert measured["num_train"] == 1294 and not measured["stand_in_data"]
    assert not measured["scaled"] and measured["measured_batch"] == 128


def counted(cell: dict) -> tuple[float, float]:
    measured = measure_group(resolve_cell_config(cell), threads=1, timed=False)
    return measured["train_gflops_per_example"] * 1e9, measured["eval_gflops_per_example"] * 1e9


def test_lstm_flops_include_the_recurrent_products():
    """digits read as 8 rows of 8 pixels: an 8 -> 16 projection per row, LSTM layers of 16
    units (4 gates: 2 * 64 * (in + 16) per row), a 16 -> 10 head. FlopCounterMode alone
    counts 0 for the fused LSTM kernel."""
    rows, projection, head = 8, 2 * 8 * 16, 2 * 16 * 10
    lstm_layer = 2 * 4 * 16 * (16 + 16)
    base = {"dataset": "digits", "model": "lstm", "width": 16}
    train, evaluation = counted({**base, "depth": 1, "norm": "none"})
    forward = rows * (projection + lstm_layer) + head
    assert evaluation == forward
    # backward: the projection's weights (its input needs no gradient), the LSTM's inputs,
    # states and weights, the head's input and weights
    assert train == forward + rows * (projection + 2 * lstm_layer) + 2 * head
    # BN-only, two LSTM layers: frozen weights, but the gradient flows back through both
    # layers to the projection's normalizer; nothing for the frozen projection and head
    train, evaluation = counted({**base, "depth": 2, "norm": "batch", "freeze": "norm"})
    forward = rows * (projection + 2 * lstm_layer) + head
    assert evaluation == forward
    assert train == forward + rows * 2 * lstm_layer + head


def test_text_lstm_flops_count_no_embedding_products():
    """synthetic_sentiment: T = 20 token steps; an embedding lookup is not a matrix product
    (0 FLOPs), an LSTM layer of 16 units on 8-dim embeddings, a 16 -> 2 head."""
    steps, head = 20, 2 * 16 * 2
    lstm_layer = 2 * 4 * 16 * (8 + 16)
    base = {"dataset": "synthetic_sentiment", "model": "lstm_text", "width": 16}
    cell = {**base, "model_options": {"embedding_dim": 8}, "norm": "none"}
    train, evaluation = counted(cell)
    forward = steps * lstm_layer + head
    assert evaluation == forward
    # backward: the LSTM's inputs (the embedding trains), states and weights; the head's
    assert train == forward + steps * 2 * lstm_layer + 2 * head
    # BN-only: the gradient reaches the embedding's normalizer through the frozen LSTM
    train, _ = counted({**cell, "norm": "batch", "freeze": "norm"})
    assert train == forward + steps * lstm_layer + head


def test_resnet_flops_match_the_hand_count():
    """ResNet-8 on 1x8x8 digits: stem 1 -> 16; stages of one block (16 at 8x8, 32 at 4x4,
    64 at 2x2; strided 1x1 projection shortcuts); a 64 -> 10 head. A k x k convolution
    costs 2 * c_in * c_out * k^2 per output position."""

    def conv(c_in, c_out, k, side):
        return 2 * c_in * c_out * k * k * side * side

    stem = conv(1, 16, 3, 8)
    forward = (
        stem
        + 2 * conv(16, 16, 3, 8)
        + conv(16, 32, 3, 4) + conv(32, 32, 3, 4) + conv(16, 32, 1, 4)
        + conv(32, 64, 3, 2) + conv(64, 64, 3, 2) + conv(32, 64, 1, 2)
        + 2 * 64 * 10
    )  # fmt: skip
    train, evaluation = counted({"dataset": "digits", "model": "resnet", "depth": 8})
    assert evaluation == forward
    # weights: forward again; inputs: forward again but the image's
    assert train == 3 * forward - stem


# Hand counts. Convention (normstudy.flops): 2 FLOPs per multiply-add of a matrix
# product, convolution or recurrent layer, nothing else: normalizers, ReLUs, pooling,
# residual additions, biases and the loss are elementwise work and are not counted (they
# are O(activations), against O(activations x fan-in) for the layers). A training
# example costs the forward pass, plus the same again for the weight gradients of every
# trained layer, plus the same again for the input gradients of every layer that has
# something trainable before it (never for the first layer, whose input is the data).


def conv(c_in: int, c_out: int, k: int, side: int) -> int:
    """A k x k convolution on a side x side output: 2 * k * k * c_in * c_out * H * W."""
    return 2 * k * k * c_in * c_out * side * side


def dense(fan_in: int, fan_out: int) -> int:
    return 2 * fan_in * fan_out


def image_flops(cell: dict, input_shape=(3, 32, 32)) -> tuple[float, float]:
    """The estimator's FLOPs per training and per evaluated example for a CIFAR-shaped
    input (the count depends on shapes only, so no data set is loaded)."""
    splits = SimpleNamespace(input_shape=input_shape, num_classes=10, tokens=False)
    return flops_per_example(resolve_cell_config(cell), splits)


def test_mlp_depth_2_width_8_flops_match_the_hand_count():
    """digits (64 inputs) -> 8 -> 8 -> 10, with Batch Norm (no biases; BN not counted)."""
    first = dense(64, 8)
    forward = first + dense(8, 8) + dense(8, 10)
    train, evaluation = counted({**MLP, "width": 8, "norm": "batch"})
    assert evaluation == forward == 2 * (512 + 64 + 80)
    # weight gradients: forward again; input gradients: forward again but the first layer's
    assert train == 3 * forward - first


def wrn_16_2_forward(shortcut_convs: bool) -> tuple[int, int]:
    """WRN-16-2 (n = 2 blocks per stage, k = 2) on 32x32x3: stem 3 -> 16 at 32x32; stages
    of 32 channels at 32x32, 64 at 16x16, 128 at 8x8 (stride 2 in the first conv of stages
    2 and 3), each block two 3x3 convs; the first block of every stage changes the channel
    count (16 -> 32 even at stride 1), so it has a 1x1 projection shortcut (option B) at
    the block's output size; global average pool; 128 -> 10 head. Returns (forward, stem)."""
    stem = conv(3, 16, 3, 32)
    forward = stem + dense(128, 10)
    c_in = 16
    for c, side in ((32, 32), (64, 16), (128, 8)):
        forward += conv(c_in, c, 3, side) + conv(c, c, 3, side)  # block 1
        forward += conv(c_in, c, 1, side) if shortcut_convs else 0  # its shortcut
        forward += 2 * conv(c, c, 3, side)  # block 2, identity shortcut
        c_in = c
    return forward, stem


def test_wrn_flops_match_the_hand_count():
    base = {"dataset": "cifar10", "model": "wrn", "depth": 16, "width": 2}
    forward, stem = wrn_16_2_forward(shortcut_convs=True)
    assert forward == 202_213_888  # 0.20 GFLOP, 0.10 G multiply-adds
    train, evaluation = image_flops(base)
    assert evaluation == forward
    assert train == 3 * forward - stem
    # BN-only: no weight gradients; input gradients flow back to the stem's normalizer
    train, evaluation = image_flops({**base, "freeze": "norm"})
    assert evaluation == forward and train == 2 * forward - stem
    # Shortcut A (zero-padded identity) has no convolution
    forward_a, _ = wrn_16_2_forward(shortcut_convs=False)
    train, evaluation = image_flops({**base, "model_options": {"shortcut": "A"}})
    assert evaluation == forward_a and train == 3 * forward_a - stem


def test_vgg_flops_match_the_hand_count_with_and_without_residuals():
    """VGG-16 at width 0.25 on 32x32x3: 5 stages of 3 convs (16, 32, 64, 128, 128
    channels) at 32, 16, 8, 4, 2 pixels (2x2 max-pools between stages, not counted); each
    stage's first conv changes the channel count, the other two keep it (a pair that
    ``residual`` wraps in a skip connection: an addition, not counted, so the count is
    the same); global average pool; 128 -> 10 head."""
    first = conv(3, 16, 3, 32)
    forward, c_in = dense(128, 10), 3
    for c, side in ((16, 32), (32, 16), (64, 8), (128, 4), (128, 2)):
        forward += conv(c_in, c, 3, side) + 2 * conv(c, c, 3, side)
        c_in = c
    base = {"dataset": "cifar10", "model": "vgg", "depth": 16, "width": 0.25}
    for residual in (False, True):
        for norm in ("batch", "none"):  # biases (norm none) are not counted either
            cell = {**base, "norm": norm, "model_options": {"residual": residual}}
            train, evaluation = image_flops(cell)
            assert evaluation == forward
            assert train == 3 * forward - first


def test_vgg_11_is_about_1_3_times_resnet_56_per_training_example():
    """The paper-scale noisy_bn (VGG-11) and fewer_norms (ResNet-56) cells, on CIFAR."""
    vgg, _ = image_flops({"dataset": "cifar10", "model": "vgg", "depth": 11})
    resnet, _ = image_flops({"dataset": "cifar100", "model": "resnet", "depth": 56})
    # VGG-11: 2 convs in each of 5 stages, 64..512 channels at 32..2 pixels
    stages = ((3, 64, 32), (64, 128, 16), (128, 256, 8), (256, 512, 4), (512, 512, 2))
    vgg_forward = dense(512, 10) + sum(
        conv(c_in, c, 3, side) + conv(c, c, 3, side) for c_in, c, side in stages
    )
    assert vgg == 3 * vgg_forward - conv(3, 64, 3, 32)
    assert 1.5 < vgg / resnet < 2.0  # 1.37 vs 0.75 GFLOP; BN-only cells halve the backward


def test_flops_only_times_nothing():
    config = resolve_cell_config({**MLP, "norm": "none"})
    measured = measure_group(config, threads=1, timed=False)
    assert measured["train_gflops_per_example"] > 0 and measured["eval_gflops_per_example"] > 0
    assert math.isnan(measured["step_seconds"]) and measured["measured_batch"] == 0


def test_a_step_over_budget_is_timed_at_a_smaller_batch_and_scaled():
    config = resolve_cell_config({**MLP, "batch_size": 1024})
    measured = measure_group(config, steps=1, step_budget=1e-9, threads=1)
    assert measured["scaled"] and measured["measured_batch"] == 8
    assert measured["batch_size"] == 1024


def test_stand_in_data_has_the_real_shapes_counts_and_splits():
    splits = stand_in_splits("mnist", val_size=0.1, split_seed=0)
    assert splits.sizes() == {"train": 54000, "val": 6000, "test": 10000}
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert not splits.augment
    assert splits.train_x.dtype.is_floating_point is False


def test_estimate_command_writes_per_study_and_per_group_tables(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "scale: demo\n"
        "defaults: {dataset: digits, model: mlp, depth: 1, width: 8, epochs: 2}\n"
        "studies:\n"
        "  a: {grid: {norm: [batch, none], seed: [0, 1]}}\n"
        "  b: {grid: {norm: [batch]}}\n"
    )
    out = tmp_path / "estimate"
    result = subprocess.run(
        [sys.executable, "-m", "normstudy.cli", "estimate", str(config), str(out), "--steps", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    studies = pd.read_csv(out / "studies.csv")
    assert studies["study"].tolist() == ["a", "b", "total"]
    assert studies["cells"].tolist() == [4, 1, 4]  # b's cell is a's batch seed 0: once in total
    for column in ("hours", "pflop"):
        per_study = dict(zip(studies["study"], studies[column], strict=True))
        assert per_study["total"] == pytest.approx(per_study["a"]) and per_study["b"] > 0
    groups = pd.read_csv(out / "groups.csv")
    assert sorted(groups["cells"]) == [2, 2] and set(groups["norm"]) == {"batch", "none"}
    assert "total" in result.stdout and (out / "studies.txt").read_text() in result.stdout + "\n"
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 4 and set(cells["device"]) == {"cpu"}
    assert cells["hours"].sum() == pytest.approx(studies["hours"].iloc[-1])
    # A CPU measurement never sets the time of a GPU job (normstudy.cluster).
    assert measured_minutes(out / "cells.csv") == {}


def test_estimate_command_prices_flops_on_an_assumed_device(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "defaults: {dataset: digits, model: mlp, depth: 1, width: 8, epochs: 2}\n"
        "studies:\n  a: {grid: {norm: [batch, none]}}\n"
    )
    out = tmp_path / "estimate"
    command = [sys.executable, "-m", "normstudy.cli", "estimate", str(config), str(out)]
    options = ["--flops-only", "--assume-tflops", "2", "--utilisation", "0.5"]
    result = subprocess.run(command + options, capture_output=True, text=True, check=True)
    studies = pd.read_csv(out / "studies.csv")
    # PFLOPs / (2 TFLOP/s x 0.5): 1 PFLOP would take 1000 s
    expected = studies["pflop"] * 1e3 / 3600
    assert studies["assumed_hours"].tolist() == pytest.approx(expected.tolist())
    assert "2 TFLOP/s x 0.5 utilisation" in result.stdout
    assert pd.read_csv(out / "cells.csv")["device"].eq("none").all()
    bad = subprocess.run(
        command + ["--assume-tflops", "2", "--utilisation", "1.5"], capture_output=True
    )
    assert bad.returncode == 2


def test_estimate_command_rejects_a_bad_study(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("studies:\n  a: {grid: {norm: [nonsense]}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "normstudy.cli", "estimate", str(config), str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "nonsense" in result.stderr and not (tmp_path / "o").exists()


def test_sentiment140_cells_are_estimated_and_checked_on_a_stand_in():
    """No CSV here: the planning-time build check and the FLOP count use random token ids
    with the real split sizes; lstm_text at Torri's scale (E = 200, H = 102, T = 40)."""
    from normstudy.buildcheck import build_problem
    from normstudy.estimate import splits_for_estimate

    config = resolve_cell_config({"dataset": "sentiment140", "model": "lstm_text", "norm": "batch"})
    splits, stand_in = splits_for_estimate(config)
    assert stand_in and splits.sizes() == {"train": 90000, "val": 10000, "test": 25000}
    assert build_problem(config) is None
    assert "cannot read" in build_problem({**config, "model": "lstm"})
    _, evaluation = counted({"dataset": "sentiment140", "model": "lstm_text", "norm": "batch"})
    assert evaluation == 40 * 2 * 4 * 102 * (200 + 102) + 2 * 102 * 2


@pytest.mark.parametrize(
    ("settings", "num_train", "steps", "examples"),
    [
        ({"shuffle": True}, 1030, 20, 1000),  # n // batch full batches; remainder dropped
        ({"shuffle": False}, 1030, 21, 1030),  # the partial last batch of 30 kept
        ({"shuffle": False}, 1001, 20, 1001),  # a remainder of 1 joins the batch before it
        ({"shuffle": False}, 1000, 20, 1000),
        ({"full_batch": True}, 1030, 1, 1030),  # shuffled or not: one batch of everything
        ({"full_batch": True, "shuffle": False}, 1030, 1, 1030),
    ],
)
def test_the_estimate_counts_the_steps_and_examples_training_takes(
    settings, num_train, steps, examples
):
    """train.py runs ``normstudy.epochs.Plan``'s steps; the estimate prices the same."""
    config = resolve_cell_config({**MLP, "epochs": 3, "batch_size": 50, **settings})
    plan = Plan.for_config(config, num_train)
    bounds = batch_bounds(num_train, plan.batch_size, shuffled=plan.shuffled)
    assert plan.steps_per_epoch == len(bounds) == steps
    assert plan.examples == 3 * sum(stop - start for start, stop in bounds) == 3 * examples
    measured = {
        "num_train": num_train,
        "num_eval": 0,
        "step_seconds": 1.0,
        "eval_seconds_per_example": 0.0,
        "train_gflops_per_example": 1.0,
        "eval_gflops_per_example": 0.0,
    }
    hours, pflop = cell_cost(config, measured)
    assert hours * 3600 == pytest.approx(3 * steps)
    assert pflop * 1e6 == pytest.approx(3 * examples)
    if not config["full_batch"]:  # fixed steps can end inside an epoch: 1 epoch + 5 batches
        fixed = resolve_cell_config({**config, "steps": steps + 5})
        assert Plan.for_config(fixed, num_train).examples == examples + 5 * 50


def test_the_training_code_uses_the_same_step_count():
    import importlib

    # The module, not the function of the same name that normstudy.train exports.
    prepare = importlib.import_module("normstudy.train.prepare")
    assert prepare.Plan is Plan


@pytest.mark.parametrize(
    ("settings", "steps_per_epoch"),
    [({}, 10), ({"shuffle": False}, 11), ({"full_batch": True}, 1)],
)
def test_the_groups_table_has_the_steps_of_an_epoch(settings, steps_per_epoch):
    """digits' 1294 training examples at batch 128: 10 full batches (+ 14 examples)."""
    plan = plan_studies(workflow_config(s={"set": {"norm": "none", **settings}}))
    (group,) = estimate_plan(plan, timed=False).groups
    assert group.steps_per_epoch == steps_per_epoch


def test_job_sizes_count_the_examples_training_takes():
    config = resolve_cell_config({"dataset": "cifar10", "epochs": 2, "batch_size": 128})
    assert training_examples(config) == 2 * (45000 // 128) * 128  # shuffled: full batches
    unshuffled = {**config, "shuffle": False}
    assert training_examples(unshuffled) == 2 * 45000
    assert training_examples({**config, "full_batch": True, "steps": 3}) == 3 * 45000
