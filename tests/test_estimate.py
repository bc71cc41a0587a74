"""The cost estimate: grouping, the hours arithmetic, FLOP counts, stand-in data, the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from normstudy.cluster import measured_minutes
from normstudy.config import resolve_cell_config
from normstudy.data.torchvision_sets import stand_in_splits
from normstudy.estimate import cell_cost, cost_groups, measure_group
from normstudy.grid import plan_studies

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
    splits = stand_in_splits("mnist", val_size=0.1, split_seed=0, train_size=1000)
    assert splits.sizes() == {"train": 1000, "val": 6000, "test": 10000}
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
