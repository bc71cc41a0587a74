"""What every probe shares: its context, its records, isolation from training, failures.

A probe is a measurement taken inside a cell (docs/design.md, "Layout"). It sees the live
model through a :class:`ProbeContext` and returns long-format records
``(probe, layer, layer_index, key, value)``; the training loop adds ``epoch`` and
``step`` (:data:`normstudy.schemas.PROBE_RECORDS_SCHEMA`). A probe must never change
training: :func:`run_probe` runs it inside :func:`isolated`, which gives it its own RNG
stream and puts back every buffer, gradient, parameter, train/eval flag and the global
RNG state afterwards, and which turns any failure into a ``failed`` record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from normstudy.catalog import PROBES as PROBE_CATALOG
from normstudy.catalog.probes import ProbeDefinition
from normstudy.models import depth_layers
from normstudy.norms.base import Normalizer, NormedLayer

Record = dict[str, Any]
"""One measurement: keys ``probe, layer, layer_index, key, value``."""

RECORD_KEYS = ("probe", "layer", "layer_index", "key", "value")
MODEL_LAYER = ("model", -1)
SEED_BOUND = 2**62


class ProbeFailure(RuntimeError):
    """A probe could not measure (no data, non-finite loss, solver did not converge)."""


@dataclass
class ProbeContext:
    """Everything a probe may look at, handed over by the training loop.

    - ``model``: the live model, in the mode the loop left it (train mode while training);
    - ``config``: the resolved cell config (:data:`normstudy.config.DEFAULTS` keys);
    - ``probe_x``, ``probe_y``: the probes' own fixed data subset (standardised, on the
      model's device), chosen once per cell with the probes' RNG; probes slice it from
      the start;
    - ``loss_fn(logits, y)``: the scalar loss the probes differentiate, the cross-entropy
      (:func:`normstudy.train.data_loss`; without a RegNorm model's regularizer);
    - ``roles``: parameter name -> role (:func:`normstudy.freeze.parameter_roles`);
    - ``initial_params``: detached copies of the parameters at init;
    - ``lr``: the current learning rate; ``optimizer``: the cell's optimizer (read, never
      stepped; None where there is none, then updates are plain SGD steps of ``lr``);
      ``generator``: the probes' own CPU RNG stream;
    - ``epoch``, ``step``: completed epochs and optimizer steps; ``phase``: "init",
      "epoch", "step" or "end".
    """

    model: nn.Module
    config: dict
    probe_x: torch.Tensor
    probe_y: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    roles: dict[str, str]
    initial_params: dict[str, torch.Tensor]
    lr: float
    generator: torch.Generator
    epoch: int = 0
    step: int = 0
    phase: str = "init"
    optimizer: torch.optim.Optimizer | None = None


def layers(model: nn.Module) -> list[tuple[str, NormedLayer]]:
    """The normalised layers (:class:`NormedLayer`) along the main path, in forward order.

    Their position in this list is the ``layer_index`` of the records. A ResNet's
    projection shortcuts, which sit beside the main path
    (:func:`normstudy.models.depth_layers`), get no layer index: their parameters count in
    the whole-model records only, so that per-layer curves follow depth.
    """
    main_path = {id(layer) for layer in depth_layers(model)}
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, NormedLayer) and id(module) in main_path
    ]


def layer_parameter_names(model: nn.Module) -> list[tuple[int, str, list[str]]]:
    """``(layer_index, layer_name, qualified parameter names)`` of every normalised layer."""
    return [
        (index, name, [f"{name}.{p}" for p, _ in layer.named_parameters()])
        for index, (name, layer) in enumerate(layers(model))
    ]


def trainable_names(model: nn.Module) -> list[str]:
    """Qualified names of the parameters that train (``requires_grad``), in model order."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def selected_names(model: nn.Module, which: str) -> list[str]:
    """The parameters a gradient probe differentiates: ``trainable`` ones or ``all``."""
    if which == "all":
        return [name for name, _ in model.named_parameters()]
    return trainable_names(model)


def set_mode(model: nn.Module, mode: str) -> None:
    """Train mode (batch statistics, noise) or eval mode (running statistics)."""
    model.train(mode == "train")


def probe_batch(ctx: ProbeContext, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` examples of the probe data (all of them if there are fewer)."""
    if len(ctx.probe_y) == 0:
        raise ProbeFailure("the probe data subset is empty")
    return ctx.probe_x[:size], ctx.probe_y[:size]


def batch_size_for(option: int | None, config: dict) -> int:
    """A probe's minibatch size: its ``batch_size`` option, else the cell's training batch.

    Probes measure what a training step sees, so by default they use the training batch
    size (batch statistics depend on it); a full-batch cell uses 512 examples (the
    subset size of "Is Batch Norm unique?" §6) rather than the whole training set.
    """
    if option is not None:
        return option
    if config.get("full_batch"):
        return 512
    return int(config.get("batch_size", 128))


def draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(SEED_BOUND, (1,), generator=generator).item())


def cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextmanager
def reseeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG (CPU and CUDA) seeded to ``seed``, then restore it.

    Probes that compare two forward passes run both under the same seed ("common random
    numbers"), so that noise a normalizer draws during a training-mode forward
    (Santurkar et al.'s noisy Batch Norm) is the same in both and the comparison
    measures only what the probe changed.
    """
    with torch.random.fork_rng(devices=cuda_devices()):
        torch.manual_seed(seed)
        yield


def finite_loss(loss: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(loss).all():
        raise ProbeFailure(f"non-finite training loss ({loss.item()})")
    return loss


def loss_at(
    ctx: ProbeContext,
    x: torch.Tensor,
    y: torch.Tensor,
    point: dict[str, torch.Tensor] | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """The probes' loss (``ctx.loss_fn``) on ``(x, y)`` with the parameters replaced by ``point``.

    Uses :func:`torch.func.functional_call`, so the model's own parameters are never
    written: probes that evaluate the loss elsewhere in parameter space (ics,
    smoothness) pass the displaced values instead of stepping the parameters.
    A non-finite loss raises :class:`ProbeFailure` unless ``finite`` is false.
    """
    logits = ctx.model(x) if point is None else functional_call(ctx.model, point, (x,))
    loss = ctx.loss_fn(logits, y)
    return finite_loss(loss) if finite else loss


def loss_and_gradients(
    ctx: ProbeContext,
    x: torch.Tensor,
    y: torch.Tensor,
    names: list[str],
    values: dict[str, torch.Tensor] | None = None,
    finite: bool = True,
) -> tuple[float, dict[str, torch.Tensor]]:
    """The probes' loss on ``(x, y)`` and its gradient w.r.t. the parameters ``names``.

    Evaluated at the current parameters, or with ``values`` substituting some of them.
    Gradients go into fresh leaf tensors (no ``.grad`` is touched); parameters that do not
    affect the loss get zeros. Frozen parameters may be in ``names``: their gradient is
    what training would see if they were trainable.
    """
    values = values or {}
    point = {name: values.get(name, param).detach() for name, param in ctx.model.named_parameters()}
    for name in names:
        point[name] = point[name].clone().requires_grad_(True)
    loss = loss_at(ctx, x, y, point, finite)
    leaves = [point[name] for name in names]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True) if leaves else ()
    return loss.item(), {
        name: torch.zeros_like(leaf) if grad is None else grad.detach()
        for name, leaf, grad in zip(names, leaves, grads, strict=True)
    }


def gradients(
    ctx: ProbeContext,
    x: torch.Tensor,
    y: torch.Tensor,
    names: list[str],
    values: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The gradient part of :func:`loss_and_gradients`."""
    return loss_and_gradients(ctx, x, y, names, values)[1]


def flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors flattened and concatenated (an empty 1-d tensor for none)."""
    if not tensors:
        return torch.zeros(0)
    return torch.cat([t.reshape(-1) for t in tensors])


class Probe:
    """Base class of every probe; subclasses are registered in ``PROBES``.

    ``name`` is its entry in the probe catalog (:data:`normstudy.catalog.PROBES`), which
    holds its options (defaults, types, checks) and whether it is ``expensive``.
    Instances hold the catalog's defaults merged with the given options, checked, in
    ``settings``; ``label`` is the name records carry (the probe name unless the schedule
    entry gives another).
    """

    name: ClassVar[str] = "probe"

    def __init__(self, **options: object) -> None:
        self.settings: dict[str, Any] = self.definition().resolve("probe", options)
        self.label = self.name

    @classmethod
    def definition(cls) -> ProbeDefinition:
        """The probe's catalog entry: its options and whether it is expensive."""
        return PROBE_CATALOG[cls.name]

    def samples_needed(self, config: dict) -> int:
        """How many probe examples this probe uses with the cell ``config``."""
        return batch_size_for(self.settings.get("batch_size"), config)

    def run(self, ctx: ProbeContext) -> list[Record]:
        raise NotImplementedError

    def record(self, key: str, value: float, layer: tuple[str, int] = MODEL_LAYER) -> Record:
        """A record of ``key = value`` for ``layer`` = (name, index), or the whole model."""
        return {
            "probe": self.label,
            "layer": layer[0],
            "layer_index": layer[1],
            "key": key,
            "value": float(value),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


@contextmanager
def isolated(ctx: ProbeContext) -> Iterator[None]:
    """Make a probe side-effect free.

    Inside: torch's global RNG (CPU and every CUDA device) is forked and seeded from
    ``ctx.generator`` (the probes' own stream, which advances). On exit, even after an
    exception: every buffer of the model (Batch Norm's running statistics change on
    training-mode forwards) gets its tensor object and values back, every parameter its
    values, ``requires_grad`` and ``.grad`` (object and values), every module its
    train/eval flag, RegNorm modules their last regularizer term, and autograd its
    enabled state; the global RNG state is the one before.
    """
    model = ctx.model
    seed = draw_seed(ctx.generator)
    modes = [(module, module.training) for module in model.modules()]
    buffers = [
        (module, name, buffer, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module.named_buffers(recurse=False)
    ]
    params = [
        (
            param,
            param.detach().clone(),
            param.requires_grad,
            param.grad,
            None if param.grad is None else param.grad.detach().clone(),
        )
        for param in model.parameters()
    ]
    transient = [
        (module, module.transient_state())
        for module in model.modules()
        if isinstance(module, Normalizer)
    ]
    grad_enabled = torch.is_grad_enabled()
    with reseeded(seed):
        try:
            yield
        finally:
            torch.set_grad_enabled(grad_enabled)
            with torch.no_grad():
                for module, name, buffer, saved in buffers:
                    # Assigning a tensor to a buffer's name replaces the buffer.
                    setattr(module, name, buffer)
                    buffer.copy_(saved)
                for param, value, requires_grad, grad, saved_grad in params:
                    param.copy_(value)
                    param.requires_grad_(requires_grad)
                    param.grad = grad
                    if grad is not None:
                        grad.copy_(saved_grad)
            for module, training in modes:
                module.training = training
            for module, state in transient:
                module.restore_transient_state(state)


def failure_records(probe: Probe) -> list[Record]:
    return [probe.record("failed", 1.0)]


def checked_records(probe: Probe, records: object) -> list[Record]:
    """``records`` as well-formed records with float values, or a TypeError naming the fault."""
    if not isinstance(records, list):
        raise TypeError(f"probe {probe.label!r} returned {type(records).__name__}, not a list")
    checked = []
    for record in records:
        if not isinstance(record, dict) or sorted(record) != sorted(RECORD_KEYS):
            raise TypeError(
                f"probe {probe.label!r} returned a malformed record {record!r}; "
                f"a record has exactly the keys {', '.join(RECORD_KEYS)}"
            )
        checked.append({**record, "value": float(record["value"])})
    return checked


def run_probe(probe: Probe, ctx: ProbeContext) -> tuple[list[Record], float, str | None]:
    """Run ``probe`` in :func:`isolated`; returns ``(records, seconds, error)``; never raises.

    A probe that raises, returns malformed records, or returns records none of whose
    values is finite (a diverged cell) yields a single ``failed = 1`` record and the
    error as ``"TypeName: message"``. Records with some non-finite values are kept.
    """
    start = time.perf_counter()
    try:
        with isolated(ctx):
            records = checked_records(probe, probe.run(ctx))
        if records and not any(math.isfinite(r["value"]) for r in records):
            raise ProbeFailure(f"all {len(records)} values are non-finite")
    except Exception as error:  # noqa: BLE001 - a probe must never fail the cell
        message = f"{type(error).__name__}: {error}"
        return failure_records(probe), time.perf_counter() - start, message
    return records, time.perf_counter() - start, None
