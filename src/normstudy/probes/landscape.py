"""Santurkar et al. (2018): internal covariate shift as a gradient change, and smoothness.

Both probes evaluate the loss at displaced parameters through
:func:`torch.func.functional_call`: the model's parameters are never written. Every
forward pass of one probe run uses the same RNG seed, so a noisy normalizer draws the
same noise each time and the differences measure only the displacement.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    ProbeFailure,
    Record,
    draw_seed,
    flat,
    layer_parameter_names,
    loss_and_gradients,
    probe_batch,
    reseeded,
    set_mode,
    trainable_names,
)
from normstudy.probes.registry import register_probe


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    denominator = a.norm() * b.norm()
    return float(a @ b / denominator) if denominator > 0 else math.nan


def stepped(
    ctx: ProbeContext, names: list[str], direction: dict[str, torch.Tensor], eta: float
) -> dict[str, torch.Tensor]:
    """The parameters ``names`` moved by ``-eta * direction`` (new tensors)."""
    current = dict(ctx.model.named_parameters())
    return {name: current[name].detach() - eta * direction[name] for name in names}


def optimizer_stepped(
    ctx: ProbeContext, names: list[str], grads: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The parameters ``names`` after the step the cell's optimizer would take with
    gradients ``grads`` (new tensors; the optimizer and the model are not touched).

    The step is the optimizer's own: a copy of it (same class, param groups and state:
    momentum buffers, Adam's moments and step counts) steps detached copies of the
    parameters, so momentum, dampening, Nesterov, weight decay, Adam and the current
    learning rate all enter exactly as in training. Without an optimizer in the context
    the step is plain SGD, ``W - lr * grad``.
    """
    if ctx.optimizer is None:
        return stepped(ctx, names, grads, ctx.lr)
    wanted = {id(param): name for name, param in ctx.model.named_parameters() if name in names}
    copies: dict[str, torch.Tensor] = {}
    groups = []
    for group in ctx.optimizer.param_groups:
        params = []
        for param in group["params"]:
            twin = param.detach().clone().requires_grad_(True)
            name = wanted.get(id(param))
            if name is not None:
                twin.grad = grads[name].detach().clone()
                copies[name] = twin
            params.append(twin)
        groups.append({**group, "params": params})
    missing = sorted(set(names) - set(copies))
    if missing:
        raise ProbeFailure(f"parameters not in the optimizer: {', '.join(missing)}")
    shadow = type(ctx.optimizer)(groups)
    shadow.load_state_dict(copy.deepcopy(ctx.optimizer.state_dict()))
    shadow.step()
    return {name: copies[name].detach() for name in names}


@register_probe
class InternalCovariateShift(Probe):
    """Santurkar et al. (2018, §2.2, definition 2.1, as Kariya's summary gives it): for layer i,
    ``G = grad_{W_i} L(W_1, ..., W_k)`` and ``G' = grad_{W_i} L(W_1', ..., W_{i-1}', W_i,
    ..., W_k)`` on the same minibatch, where ``W_j'`` is ``W_j(t+1)``, the earlier layers
    j < i after the update the optimizer makes from ``grad L`` (:func:`optimizer_stepped`:
    momentum and weight decay included, at the current learning rate), "the same
    gradient after all previous layers have been updated". L is the cross-entropy
    (``ctx.loss_fn``), also for the update.

    Per normalised layer with trainable parameters (train mode, the first ``batch_size``
    probe examples): ``ics_l2`` = ``||G - G'||``, ``ics_cosine`` = cos(G, G'),
    ``grad_norm`` = ``||G||`` and ``ics_relative`` = ``||G - G'|| / ||G||``. "Earlier
    layers" are the normalised layers before i in depth order; parameters outside them (the
    head, an LSTM, projection shortcuts) are not stepped. Layer 0 has no earlier layer,
    so its ICS is 0 by definition.
    """

    name = "ics"

    def run(self, ctx: ProbeContext) -> list[Record]:
        set_mode(ctx.model, "train")
        x, y = probe_batch(ctx, self.samples_needed(ctx.config))
        trainable = set(trainable_names(ctx.model))
        if not trainable:
            raise ProbeFailure("the model has no trainable parameters")
        seed = draw_seed(ctx.generator)
        with reseeded(seed):
            _, full = loss_and_gradients(ctx, x, y, sorted(trainable))
        # SGD and Adam update each parameter from its own gradient and state alone, so one
        # step of every parameter serves every layer's set of earlier layers.
        updated = optimizer_stepped(ctx, sorted(trainable), full)
        records = []
        earlier: list[str] = []
        for index, layer, params in layer_parameter_names(ctx.model):
            own = [name for name in params if name in trainable]
            if own:
                values = {name: updated[name] for name in earlier}
                with reseeded(seed):
                    _, after = loss_and_gradients(ctx, x, y, own, values, finite=False)
                g = flat([full[name] for name in own]).double()
                g_after = flat([after[name] for name in own]).double()
                change, norm = float((g - g_after).norm()), float(g.norm())
                where = (layer, index)
                records += [
                    self.record("ics_l2", change, where),
                    self.record("ics_cosine", cosine(g, g_after), where),
                    self.record("grad_norm", norm, where),
                    self.record("ics_relative", change / norm if norm > 0 else math.nan, where),
                ]
            earlier += own
        return records


@register_probe
class Smoothness(Probe):
    """Santurkar et al. (2018, §3.1, figure 4): the loss landscape along the gradient.

    At the current parameters w, on the first ``batch_size`` probe examples (train mode),
    g = grad L(w) over the trainable parameters; for each step ``eta = lr * f``, f in
    ``step_factors`` (0.5, 1, 2, 4 by default), the loss and gradient at ``w - eta g``.
    Records ``loss/0`` (at w) and ``loss/<f>``; ``loss_range`` = max - min of the stepped
    losses ("variation of the loss"); ``grad_change_max`` = max over steps of
    ``||grad L(w - eta g) - g||`` ("gradient predictiveness"); ``beta_smoothness`` = max
    over steps of ``||grad L(w - eta g) - g|| / ||eta g||`` ("effective beta-smoothness");
    ``grad_norm`` = ``||g||``. A step that reaches a non-finite loss gives NaN/inf values
    rather than a failure: an unsmooth landscape is a result.
    """

    name = "smoothness"

    def run(self, ctx: ProbeContext) -> list[Record]:
        set_mode(ctx.model, "train")
        x, y = probe_batch(ctx, self.samples_needed(ctx.config))
        names = trainable_names(ctx.model)
        if not names:
            raise ProbeFailure("the model has no trainable parameters")
        seed = draw_seed(ctx.generator)
        with reseeded(seed):
            loss, grad = loss_and_gradients(ctx, x, y, names)
        g = flat([grad[name] for name in names]).double()
        g_norm = float(g.norm())
        records = [self.record("loss/0", loss), self.record("grad_norm", g_norm)]
        losses, changes, ratios = [], [], []
        for factor in self.settings["step_factors"]:
            eta = ctx.lr * factor
            with reseeded(seed):
                loss_step, grad_step = loss_and_gradients(
                    ctx, x, y, names, stepped(ctx, names, grad, eta), finite=False
                )
            change = float((flat([grad_step[name] for name in names]).double() - g).norm())
            losses.append(loss_step)
            changes.append(change)
            ratios.append(change / (eta * g_norm) if g_norm > 0 else math.nan)
            records.append(self.record(f"loss/{factor:g}", loss_step))
        records += [
            self.record("loss_range", np.max(losses) - np.min(losses)),
            self.record("grad_change_max", np.max(changes)),
            self.record("beta_smoothness", np.max(ratios)),
        ]
        return records
