"""Weight, activation and activation-gradient norms per layer; distance from init (Morwani 2020)."""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    Record,
    finite_loss,
    layer_parameter_names,
    layers,
    probe_batch,
    set_mode,
)
from normstudy.probes.registry import register_probe


def capture_outputs(ctx: ProbeContext, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Logits, and the output of every normalised layer, from one forward pass."""
    outputs: list[torch.Tensor | None] = [None] * len(layers(ctx.model))
    handles = []
    for index, (_, layer) in enumerate(layers(ctx.model)):

        def hook(module, inputs, output, index=index):
            outputs[index] = output

        handles.append(layer.register_forward_hook(hook))
    try:
        logits = ctx.model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, outputs


def squared_distances(ctx: ProbeContext) -> dict[str, float]:
    """``||theta - theta_0||^2`` of every parameter (float64 sums)."""
    distances = {}
    for name, param in ctx.model.named_parameters():
        if name not in ctx.initial_params:
            raise KeyError(f"parameter {name!r} has no initial value in ctx.initial_params")
        initial = ctx.initial_params[name].to(param.device, torch.float64)
        distances[name] = float((param.detach().double() - initial).pow(2).sum())
    return distances


@register_probe
class Norms(Probe):
    """Morwani (2020) §3: per layer, the norms whose joint growth makes a network without
    normalization diverge at a large learning rate; §4: the distance moved from init.

    On one probe minibatch in train mode, per normalised layer:

    - ``weight_norm``: Frobenius norm of the layer's weight as the layer uses it
      (``layer.weight``, i.e. the parametrised direction v/||v|| under Weight Norm);
    - ``activation_norm``: ``||A||_F / sqrt(N)`` for the layer's output A (after its
      normalizer, before the nonlinearity) on N examples: the root mean square of the
      per-example L2 norms, independent of the batch size;
    - ``activation_grad_norm``: ``sqrt(N) * ||dL/dA||_F`` for the (batch-mean) training loss
      L: the root mean square of the per-example loss gradients w.r.t. the activations
      (exact when examples do not interact, as without batch statistics);
    - ``distance_from_init``: ``||theta - theta_0||`` over the layer's parameters.

    For the whole model: ``distance_from_init`` over every parameter (frozen ones add 0),
    ``distance_from_init/<role>``, ``param_norm`` and ``relative_distance_from_init``
    (distance over ``||theta_0||``).
    """

    name = "norms"

    def run(self, ctx: ProbeContext) -> list[Record]:
        records = self.distance_records(ctx)
        set_mode(ctx.model, "train")
        x, y = probe_batch(ctx, self.samples_needed(ctx.config))
        x = x.detach().clone().requires_grad_(True)
        logits, outputs = capture_outputs(ctx, x)
        loss = finite_loss(ctx.loss_fn(logits, y))
        used = [o for o in outputs if o is not None]
        grads = iter(torch.autograd.grad(loss, used, allow_unused=True)) if used else iter(())
        n = len(y)
        for index, (name, layer) in enumerate(layers(ctx.model)):
            where = (name, index)
            weight = getattr(layer.layer, "weight", None)
            if isinstance(weight, torch.Tensor):
                records.append(self.record("weight_norm", weight.detach().norm(), where))
            output = outputs[index]
            if output is None:
                continue
            grad = next(grads)
            records.append(self.record("activation_norm", output.detach().norm() / n**0.5, where))
            grad_norm = math.nan if grad is None else float(grad.norm()) * n**0.5
            records.append(self.record("activation_grad_norm", grad_norm, where))
        return records

    def distance_records(self, ctx: ProbeContext) -> list[Record]:
        squared = squared_distances(ctx)
        by_role: dict[str, float] = defaultdict(float)
        for name, value in squared.items():
            by_role[ctx.roles[name]] += value
        total = sum(squared.values())
        initial = sum(float(t.double().pow(2).sum()) for t in ctx.initial_params.values())
        current = sum(float(p.detach().double().pow(2).sum()) for p in ctx.model.parameters())
        records = [
            self.record("distance_from_init", math.sqrt(total)),
            self.record("param_norm", math.sqrt(current)),
            self.record(
                "relative_distance_from_init",
                math.sqrt(total / initial) if initial > 0 else math.nan,
            ),
        ]
        records += [
            self.record(f"distance_from_init/{role}", math.sqrt(value))
            for role, value in sorted(by_role.items())
        ]
        for index, layer, params in layer_parameter_names(ctx.model):
            distance = math.sqrt(sum(squared[name] for name in params))
            records.append(self.record("distance_from_init", distance, (layer, index)))
        return records
