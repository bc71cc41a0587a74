"""Mean absolute gradient per parameter role and per layer (G42 2021, §4 and figure 2)."""

from __future__ import annotations

from collections import defaultdict

import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    Record,
    flat,
    gradients,
    layer_parameter_names,
    probe_batch,
    selected_names,
    set_mode,
)
from normstudy.probes.registry import register_probe


def mean_abs(tensors: list[torch.Tensor]) -> float:
    return float(flat(tensors).abs().mean()) if tensors else float("nan")


@register_probe
class GradNorms(Probe):
    """The average magnitude of the gradient of each parameter role.

    G42 (2021, §4, figure 2) plot "the average magnitude of gradients" of the Batch Norm
    parameters against the rest of a VGG-38 over training: each BN parameter receives
    larger gradients. We take the gradient of the training loss on one probe minibatch
    (train mode, as a training step) and record ``grad_abs_mean/<role>``, the mean of
    ``|g|`` over every scalar of the role (norm_gamma, norm_beta, weight, bias, head) and
    over ``all``, for the whole model and per normalised layer.
    ``parameters: all`` also differentiates frozen parameters (the gradient they would
    get); the default ``trainable`` measures what the optimizer sees.
    """

    name = "grad_norms"

    def run(self, ctx: ProbeContext) -> list[Record]:
        set_mode(ctx.model, "train")
        x, y = probe_batch(ctx, self.samples_needed(ctx.config))
        names = selected_names(ctx.model, self.settings["parameters"])
        grads = gradients(ctx, x, y, names)
        records = self.role_records(grads, ctx.roles)
        for index, layer, params in layer_parameter_names(ctx.model):
            own = {name: grads[name] for name in params if name in grads}
            records += self.role_records(own, ctx.roles, (layer, index))
        return records

    def role_records(self, grads, roles, layer=("model", -1)) -> list[Record]:
        by_role: dict[str, list[torch.Tensor]] = defaultdict(list)
        for name, grad in grads.items():
            by_role[roles[name]].append(grad)
        if not grads:
            return []
        records = [
            self.record(f"grad_abs_mean/{role}", mean_abs(tensors), layer)
            for role, tensors in sorted(by_role.items())
        ]
        records.append(self.record("grad_abs_mean/all", mean_abs(list(grads.values())), layer))
        return records
