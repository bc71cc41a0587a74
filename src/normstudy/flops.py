"""Model FLOPs per example: a device-independent size of a cell, for the cost estimate.

Matrix products and convolutions are counted by
:class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add).
Normalizers, ReLUs, pooling, residual additions, biases and the loss are elementwise work
and are not counted, for every model alike: they cost O(activations) against
O(activations x fan-in) for the layers, and so the counts of two normalizers (or of none)
on the same network are equal (tests/test_estimate.py checks them against hand counts).
FlopCounterMode has no formula for the fused recurrent kernels (``aten::lstm`` counts 0
on CPU and GPU), so recurrent layers are counted here by hand with the same convention: a
layer of hidden size ``h`` with ``G`` gate blocks (4 for an LSTM, 3 for a GRU, 1 for an
Elman RNN) on ``in`` input features does ``2 * G * h * (in + h)`` FLOPs per example and
time step forward. Backward costs the same again for the gradient of its inputs and
hidden states (unless nothing before it needs a gradient: then only the hidden states')
and again for its weights when they train, as for a dense layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from normstudy.data.base import input_dtype

FLOP_BATCH = 2
GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


class RecurrentCount:
    """Counts the recurrent layers' FLOPs (whole batches) of the forward passes run while
    it is attached."""

    def __init__(self, model: nn.Module) -> None:
        self.forward = 0.0
        self.backward = 0.0
        self.handles = [
            module.register_forward_hook(self.count)
            for module in model.modules()
            if type(module) in GATES
        ]

    def count(self, module: nn.RNNBase, inputs: tuple, output: Any) -> None:
        if module.proj_size:
            raise NotImplementedError("FLOPs of LSTMs with proj_size are not counted")
        x = inputs[0]
        if x.dim() != 3:
            raise NotImplementedError("FLOPs of unbatched or packed sequences are not counted")
        batch, steps = x.shape[:2] if module.batch_first else x.shape[1::-1]
        rows = GATES[type(module)] * module.hidden_size
        directions = 2 if module.bidirectional else 1
        forward = inputs_grad = 0.0
        for layer in range(module.num_layers):
            fan_in = module.input_size if layer == 0 else module.hidden_size * directions
            per_step = 2 * rows * (fan_in + module.hidden_size) * directions
            forward += per_step
            # The first layer's input gradient is needed only if something before it trains.
            needs_input = layer > 0 or x.requires_grad
            inputs_grad += per_step if needs_input else 2 * rows * module.hidden_size * directions
        trains = any(p.requires_grad for p in module.parameters())
        self.forward += batch * steps * forward
        if torch.is_grad_enabled() and (trains or x.requires_grad):
            self.backward += batch * steps * (inputs_grad + (forward if trains else 0.0))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()


def counted_flops(model: nn.Module, run) -> float:
    """Total FLOPs of ``run()`` on ``model``: FlopCounterMode's count plus the recurrent
    layers' (the backward part counted only when ``run`` trains)."""
    recurrent = RecurrentCount(model)
    try:
        with FlopCounterMode(display=False) as counter:
            trained = run()
    finally:
        recurrent.detach()
    return counter.get_total_flops() + recurrent.forward + (recurrent.backward if trained else 0)


def flops_per_example(config: Mapping[str, Any], splits) -> tuple[float, float]:
    """FLOPs per example of a training step (forward + backward through the trainable
    parameters) and of an evaluation (forward), on a copy of the model whose parameters
    are zeros (counts depend on shapes only: building on the meta device skips the random
    initialisation, zeros avoid the CPU's slow denormal arithmetic, and real CPU tensors
    avoid the meta device's per-operator overhead)."""
    from normstudy.build import model_for
    from normstudy.freeze import apply_freeze_policy

    with torch.device("meta"):
        model = model_for(dict(config), splits)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    apply_freeze_policy(model, config["freeze"])
    x = torch.zeros((FLOP_BATCH, *splits.input_shape), dtype=input_dtype(splits))
    y = torch.zeros(FLOP_BATCH, dtype=torch.int64)

    def train_step() -> bool:
        model.train()
        F.cross_entropy(model(x), y).backward()
        return True

    def evaluation() -> bool:
        model.eval()
        with torch.no_grad():
            model(x)
        return False

    train = counted_flops(model, train_step)
    return train / FLOP_BATCH, counted_flops(model, evaluation) / FLOP_BATCH
