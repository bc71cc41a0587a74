"""Train one cell: a fully resolved config -> a finished cell directory.

The loop follows the schedule of Frankle et al. (2020, §3): SGD with momentum,
step-wise learning-rate decay at fractions of training, weight decay on every
trainable parameter (including gamma and beta unless ``weight_decay_norm`` is off).
Frozen parameters never enter the optimizer. Divergence (a non-finite loss or
parameters whose global norm exceeds ``divergence_threshold``) ends the cell early
with status ``diverged``: a result, not a crash (Morwani 2020 §3, max stable lr).

Resumability: a checkpoint holds the model, optimizer, schedule, every RNG state,
the position inside the epoch and the partial curves; it is written atomically every
``checkpoint_every`` epochs and when SIGTERM or SIGUSR1 arrive (what SLURM sends before
a time limit or preemption), after which the process exits with
:data:`EXIT_CHECKPOINTED`. Running the same command again resumes bitwise-identically
on the same machine.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import normstudy
from normstudy import behaviour, provenance
from normstudy.build import check_names, model_for, set_starting_point
from normstudy.config import ConfigError, canonical_json, resolve_cell_config
from normstudy.data import DatasetSplits, augment_batch, load_dataset, standardize
from normstudy.datacache import DataCacheError, build_cache, data_digest, load_cache
from normstudy.epochs import Plan, batch_bounds  # noqa: F401  (re-exported)
from normstudy.finished import restore_finished_copy, save_finished_copy, usable_copy
from normstudy.freeze import apply_freeze_policy, parameter_counts_by_role, parameter_roles
from normstudy.grid import data_key
from normstudy.io import read_json, write_json_atomic, write_parquet_atomic, write_torch_atomic
from normstudy.norms import collect_regularizers
from normstudy.probes import ProbeContext, parse_probe_entries, run_probe, samples_needed
from normstudy.schemas import curves_table, probe_records_table

EXIT_CHECKPOINTED = 75
"""Exit status after checkpointing on SIGTERM/SIGUSR1 (sysexits EX_TEMPFAIL: retry me)."""

CHECKPOINT_FORMAT = 1
STREAMS = ("init", "data", "augment", "noise", "probes", "freeze")
"""Seed streams, appended only: a SeedSequence's i-th child is the same whatever the
number spawned, so a new stream leaves the seeds of the others unchanged."""
log = logging.getLogger("normstudy.train")


class Checkpointed(SystemExit):
    """Raised after a signal-triggered checkpoint; carries :data:`EXIT_CHECKPOINTED`."""

    def __init__(self) -> None:
        super().__init__(EXIT_CHECKPOINTED)


def stream_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for init, data order, augmentation, noise, probes and the weights
    that freeze ``random`` trains."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    states = [int(child.generate_state(1)[0]) for child in children]
    return dict(zip(STREAMS, states, strict=True))


def choose_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_threads() -> int:
    """CPU threads this job may use: its CPU affinity (what SLURM/cgroups grant), not the node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def use_deterministic_algorithms(*, compiled: bool) -> None:
    """Deterministic kernels (warning where none exists), without NaN-filling fresh memory.

    ``torch.use_deterministic_algorithms`` also imports ``torch._inductor.config`` to set
    inductor's flag, which cost 2.5 s of a cell under load (BENCHMARKS.md, per-cell
    overhead); an uncompiled run never reads that flag, so it sets only the kernel
    switch. ``fill_uninitialized_memory`` (on by default in deterministic mode) writes NaN
    into every new tensor, about 8% of a ResNet-20 step on CPU; results do not change,
    since no kernel reads memory it has not written.
    """
    if compiled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def learning_rate_factor(step: int, total_steps: int, steps_per_epoch: int, config: dict) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    ``multistep``: times ``lr_decay`` at each milestone, given as a fraction of training
    (0.5 and 0.75 of 160 epochs are Frankle et al.'s epochs 80 and 120);
    ``cosine``: half-cosine to 0; ``constant``. An optional linear warm-up over
    ``warmup_epochs`` multiplies any of them.
    """
    warmup_steps = config["warmup_epochs"] * steps_per_epoch
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    schedule = config["schedule"]
    if schedule == "constant":
        factor = 1.0
    elif schedule == "multistep":
        passed = sum(step >= round(m * total_steps) for m in config["milestones"])
        factor = config["lr_decay"] ** passed
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; valid: multistep, cosine, constant")
    return warmup * factor


@dataclass
class RunState:
    """Everything of a run that is not in the model or optimizer and must survive a restart."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    permutation: torch.Tensor | None = None
    running_loss: float = 0.0
    running_correct: float = 0.0
    running_count: int = 0
    curves: list[dict] = field(default_factory=list)
    probe_records: list[dict] = field(default_factory=list)
    probe_seconds: dict[str, float] = field(default_factory=dict)
    probe_errors: list[str] = field(default_factory=list)
    status: str = "running"
    diverged_step: int | None = None
    diverged_epoch: int | None = None
    diverged_reason: str | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    samples_seen: int = 0
    resumed: int = 0
    runs: list[dict] = field(default_factory=list)
    """The provenance of every run that worked on the cell (:mod:`normstudy.provenance`),
    oldest first; kept in the checkpoint, so a resumed cell also knows where it started."""


class SignalFlag:
    """Remembers that SIGTERM or SIGUSR1 arrived (or, with ``stop_with_snakemake``, that the
    snakemake that started this job ended: :mod:`normstudy.parentwatch`); the loop
    checkpoints at the next step."""

    SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self, stop_with_snakemake: bool = False) -> None:
        self.received: int | None = None
        self.reason: str | None = None
        self.stop_with_snakemake = stop_with_snakemake
        self._previous: dict[int, Any] = {}
        self._watch = None

    def __enter__(self) -> SignalFlag:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        if self.stop_with_snakemake:
            from normstudy.parentwatch import watch_ancestors

            self._watch = watch_ancestors(self._parent_gone)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self.reason = f"signal {signum}"

    def _parent_gone(self, reason: str) -> None:
        self.reason = reason
        self.received = signal.SIGTERM

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Cell:
    """The live objects of one run."""

    config: dict
    splits: DatasetSplits
    plan: Plan
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generators: dict[str, torch.Generator]
    train_x: torch.Tensor
    train_y: torch.Tensor
    state: RunState
    probes: ProbeRunner | None = None
    train_forward: Any = None
    """The model's forward for training steps: ``torch.compile(model)`` or the model itself."""


def optimizer_for(model: nn.Module, trainable: list[nn.Parameter], config: dict):
    """SGD (momentum, optional Nesterov) or Adam over the trainable parameters only.

    Weight decay applies to every trainable parameter, gamma and beta included
    (Frankle et al. 2020 §3); ``weight_decay_norm: false`` exempts gamma and beta.
    """
    roles = parameter_roles(model)
    role_of = {id(p): roles[name] for name, p in model.named_parameters()}
    decayed, exempt = [], []
    for param in trainable:
        is_norm = role_of[id(param)] in ("norm_gamma", "norm_beta")
        (exempt if is_norm and not config["weight_decay_norm"] else decayed).append(param)
    groups = [{"params": decayed, "weight_decay": config["weight_decay"]}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(
            groups, lr=config["lr"], momentum=config["momentum"], nesterov=config["nesterov"]
        )
    return torch.optim.Adam(groups, lr=config["lr"], betas=tuple(config["adam_betas"]))


def train_subset(splits: DatasetSplits, size: int | None, split_seed: int):
    """The first ``size`` examples of a permutation fixed by ``split_seed`` (same in every cell)."""
    if size is None:
        return splits.train_x, splits.train_y
    n = len(splits.train_y)
    if size > n:
        raise ConfigError(
            f"config key 'train_subset' = {size} exceeds the {n} training examples of "
            f"{splits.name!r}"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))[:size]
    order, _ = torch.sort(order)
    return splits.train_x[order], splits.train_y[order]


def splits_for(
    config: dict, data_dir: str | Path | None, download: bool, data_cache: str | Path | None
) -> DatasetSplits:
    """The cell's dataset, from the workflow's tensor cache when one is given."""
    try:
        if data_cache is not None:
            try:
                return load_cache(data_cache, config)
            except (DataCacheError, FileNotFoundError) as error:
                problem = (
                    f"data cache {data_cache} is missing"
                    if isinstance(error, FileNotFoundError)
                    else str(error).split("; delete it")[0]
                )
                print(f"normstudy: warning: {problem}; rebuilding it", file=sys.stderr)
                return build_cache(config, data_cache, data_dir=data_dir, download=download)
        return load_dataset(
            config["dataset"],
            data_dir=data_dir,
            download=download,
            val_size=config["val_size"],
            split_seed=config["split_seed"],
            **config["dataset_options"],
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"dataset {config['dataset']!r}: {error}") from error


def check_forward(model: nn.Module, x: torch.Tensor) -> None:
    """Run a copy of ``model`` on two examples, so shape errors surface before training.

    Some combinations only fail on real shapes (Instance Norm on a 1x1 feature map);
    the copy and a forked RNG keep the real model and every random stream untouched.
    """
    with torch.random.fork_rng(devices=[]):
        trial = copy.deepcopy(model).train()
        try:
            trial(x)
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"the model cannot run on this dataset: {error}") from error


def prepare(
    config: dict,
    *,
    data_dir: str | Path | None,
    download: bool,
    threads: int | None,
    data_cache: str | Path | None = None,
    splits: DatasetSplits | None = None,
) -> Cell:
    """Validate, load data, build model and optimizer: everything that can fail on bad input.

    ``splits`` replaces the cell's dataset (the cost estimate's stand-in data)."""
    check_names(config)
    try:
        entries = parse_probe_entries(config["probes"])
    except ValueError as error:
        raise ConfigError(f"config key 'probes': {error}") from error
    if splits is None:
        splits = splits_for(config, data_dir, download, data_cache)
    train_x, train_y = train_subset(splits, config["train_subset"], config["split_seed"])
    plan = Plan.for_config(config, len(train_y))
    torch.set_num_threads(threads or available_threads())
    use_deterministic_algorithms(compiled=config["compile"])
    device = choose_device()
    seeds = stream_seeds(config["seed"])
    torch.manual_seed(seeds["init"])
    model = model_for(config, splits).to(device, memory_format=memory_format(config))
    if config["init_from"] is not None:
        inputs = inputs_for_model(train_x.to(device), splits)
        set_starting_point(config, model, splits, inputs, seeds["init"])
    check_forward(model, standardize(train_x[:2], splits).to(device))
    try:
        trainable = apply_freeze_policy(
            model, config["freeze"], torch.Generator().manual_seed(seeds["freeze"])
        )
    except ValueError as error:
        raise ConfigError(f"config key 'freeze': {error}") from error
    optimizer = optimizer_for(model, trainable, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(step, plan.total_steps, plan.steps_per_epoch, config),
    )
    generators = {
        name: torch.Generator(device="cpu").manual_seed(seeds[name])
        for name in ("data", "augment", "probes")
    }
    torch.manual_seed(seeds["noise"])
    cell = Cell(
        config,
        splits,
        plan,
        device,
        model,
        optimizer,
        scheduler,
        generators,
        train_x.to(device),
        train_y.to(device),
        RunState(),
    )
    cell.train_forward = torch.compile(model) if config["compile"] else model
    if entries:
        cell.probes = ProbeRunner(cell, entries)
    return cell


def memory_format(config: dict) -> torch.memory_format:
    """``torch.channels_last`` (NHWC) for image batches and conv weights if the config asks."""
    return torch.channels_last if config["channels_last"] else torch.contiguous_format


def model_batch(cell: Cell, x: torch.Tensor) -> torch.Tensor:
    """A standardised batch of ``x`` on the device, in the cell's memory format."""
    x = inputs_for_model(x.to(cell.device), cell.splits)
    return x.contiguous(memory_format=memory_format(cell.config)) if x.dim() == 4 else x


def training_losses(cell: Cell, logits: torch.Tensor, y: torch.Tensor):
    """The cross-entropy, and the loss that trains: it plus ``reg_strength`` times the RegNorm
    terms of this forward pass."""
    loss = data_loss(logits, y)
    regularizer = collect_regularizers(cell.model)
    total = loss if regularizer is None else loss + cell.config["reg_strength"] * regularizer
    return loss, total


def data_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The cross-entropy alone, the loss the probes differentiate.

    The papers' curvature and gradient measures are of the data loss: Santurkar et al.
    2018 §2.2 and §3.1 (ICS, smoothness), "Is Batch Norm unique?" §4.2 and §6 (gradient
    confusion, Hessian spectra). A RegNorm model's training loss adds ``reg_strength``
    times its regularizer (:func:`training_losses`), which the probes leave out.
    """
    return F.cross_entropy(logits.float(), y)


class ProbeRunner:
    """Runs the cell's scheduled probes and keeps their records in the run state.

    Probes see their own fixed subset of the training set (drawn once with the probes'
    RNG stream), the parameters at init (for distance from init) and the training loss;
    :func:`normstudy.probes.run_probe` isolates them, so training is unchanged.
    """

    def __init__(self, cell: Cell, entries: list) -> None:
        self.cell = cell
        self.entries = entries
        self.probes = [entry.build() for entry in entries]
        size = min(samples_needed(entries, cell.config, minimum=1), len(cell.train_y))
        generator = cell.generators["probes"]
        order = torch.randperm(len(cell.train_y), generator=generator)[:size].to(cell.device)
        self.probe_x = inputs_for_model(cell.train_x[order], cell.splits)
        self.probe_y = cell.train_y[order]
        self.roles = parameter_roles(cell.model)
        self.initial_params = {
            name: p.detach().clone() for name, p in cell.model.named_parameters()
        }

    def run(self, phase: str) -> None:
        state = self.cell.state
        for entry, probe in zip(self.entries, self.probes, strict=True):
            if not entry.due(phase, state.epoch, state.step):
                continue
            if phase == "epoch" and state.epoch == self.cell.plan.epochs and entry.at_end:
                continue
            context = ProbeContext(
                model=self.cell.model,
                config=self.cell.config,
                probe_x=self.probe_x,
                probe_y=self.probe_y,
                loss_fn=data_loss,
                roles=self.roles,
                initial_params=self.initial_params,
                lr=float(self.cell.optimizer.param_groups[0]["lr"]),
                optimizer=self.cell.optimizer,
                generator=self.cell.generators["probes"],
                epoch=state.epoch,
                step=state.step,
                phase=phase,
            )
            records, seconds, error = run_probe(probe, context)
            label = probe.label
            state.probe_seconds[label] = state.probe_seconds.get(label, 0.0) + seconds
            if error:
                state.probe_errors.append(
                    f"{label} at epoch {state.epoch} step {state.step}: {error}"
                )
            state.probe_records.extend(
                {**record, "epoch": state.epoch, "step": state.step} for record in records
            )


def inputs_for_model(x: torch.Tensor, splits: DatasetSplits) -> torch.Tensor:
    return standardize(x, splits)


def training_batch(cell: Cell, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented, standardised training batch (airbench style: whole batch on device)."""
    indices = indices.to(cell.device)
    x = cell.train_x[indices]
    if cell.splits.augment and cell.config["augment"]:
        x = augment_batch(x, cell.generators["augment"])
    return model_batch(cell, x), cell.train_y[indices]


def epoch_permutation(cell: Cell) -> torch.Tensor:
    n = len(cell.train_y)
    if cell.plan.shuffled:
        return torch.randperm(n, generator=cell.generators["data"])
    return torch.arange(n)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cell: Cell):
    """Mean loss and accuracy in eval mode; NaN for an empty split."""
    if len(y) == 0:
        return math.nan, math.nan
    model.eval()
    batch = cell.config["eval_batch_size"] or cell.plan.batch_size
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch):
        xb = model_batch(cell, x[start : start + batch])
        yb = y[start : start + batch].to(cell.device)
        with autocast(cell):
            logits = cell.model(xb)
        total_loss += F.cross_entropy(logits.float(), yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return total_loss / len(y), correct / len(y)


def autocast_enabled(cell: Cell) -> bool:
    """bf16 autocast runs only on CUDA: on CPU ``amp: true`` is a no-op, said in train.log."""
    return cell.config["amp"] and cell.device.type == "cuda"


def autocast(cell: Cell):
    return torch.autocast(
        device_type=cell.device.type, dtype=torch.bfloat16, enabled=autocast_enabled(cell)
    )


def parameters_diverged(cell: Cell) -> str | None:
    params = [p.detach() for p in cell.model.parameters() if p.requires_grad]
    norm = torch.nn.utils.get_total_norm(params, foreach=True)
    if not torch.isfinite(norm):
        return "non-finite parameters"
    if norm.item() > cell.config["divergence_threshold"]:
        return f"parameter norm {norm.item():.3g} > {cell.config['divergence_threshold']:g}"
    return None


def train_step(cell: Cell, indices: torch.Tensor) -> str | None:
    """One optimizer step; returns the divergence reason, or None."""
    x, y = training_batch(cell, indices)
    with autocast(cell):
        logits = cell.train_forward(x)
        loss, total = training_losses(cell, logits, y)
    if not torch.isfinite(total):
        return f"non-finite loss ({total.item()})"
    cell.optimizer.zero_grad(set_to_none=True)
    total.backward()
    cell.optimizer.step()
    cell.scheduler.step()
    state = cell.state
    state.running_loss += loss.item() * len(y)
    state.running_correct += (logits.argmax(1) == y).sum().item()
    state.running_count += len(y)
    state.samples_seen += len(y)
    state.step += 1
    return parameters_diverged(cell)


def checkpoint_payload(cell: Cell) -> dict:
    state = cell.state
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": canonical_json(cell.config),
        "model": cell.model.state_dict(),
        "optimizer": cell.optimizer.state_dict(),
        "scheduler": cell.scheduler.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng": {name: g.get_state() for name, g in cell.generators.items()},
        "state": {k: v for k, v in vars(state).items() if k != "permutation"},
        "permutation": state.permutation,
    }
    if cell.device.type == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state_all()
    return payload


def save_checkpoint(cell: Cell, path: Path) -> None:
    """Write the checkpoint atomically (a temporary file beside it, then a rename).

    On a full disk the older checkpoint, which takes the room a second copy needs, is
    removed and the write tried once more; if that fails too, nothing of either is left,
    so the next run starts the cell over instead of resuming into the same full disk.
    """
    payload = checkpoint_payload(cell)
    try:
        write_torch_atomic(path, payload)
        return
    except OSError as error:
        if error.errno != errno.ENOSPC or not path.exists():
            raise OSError(
                error.errno, f"{error.strerror} writing checkpoint {path}; nothing of it is left"
            ) from error
    size = path.stat().st_size
    path.unlink()
    print(
        f"normstudy: warning: no space for a new checkpoint beside {path} ({size / 1e6:.1f} MB): "
        "removed the older one to make room",
        file=sys.stderr,
    )
    try:
        write_torch_atomic(path, payload)
    except OSError as error:
        raise OSError(
            error.errno,
            f"{error.strerror} writing checkpoint {path} ({size / 1e6:.1f} MB), even after "
            "removing the older one; no checkpoint is left, so the next run starts this cell "
            "over: free space on that disk",
        ) from error


def restore_checkpoint(cell: Cell, path: Path) -> str | None:
    """Load ``path`` into ``cell``; returns why it was ignored, or None if it was used.

    Whatever the file holds (unreadable, another format, config or model, a layout with
    keys this code does not know), it is either used whole or reported and ignored: every
    part is checked before anything is loaded, and a failed load puts the cell back as it was.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location=cell.device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported and ignored
        return f"checkpoint {path} is unreadable ({type(error).__name__}: {error})"
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        return f"checkpoint {path} has an unknown format"
    if payload.get("config") != canonical_json(cell.config):
        return f"checkpoint {path} belongs to a different config"
    try:
        state = RunState(**payload["state"])
        state.permutation = payload["permutation"]
        rng_torch = payload["rng_torch"].cpu()
        rng = {name: payload["rng"][name].cpu() for name in cell.generators}
        rng_cuda = [s.cpu() for s in payload["rng_cuda"]] if "rng_cuda" in payload else None
    except (TypeError, KeyError, AttributeError) as error:
        problem = f"{type(error).__name__}: {error}"
        return f"checkpoint {path} has a layout this code does not know ({problem})"
    backup = copy.deepcopy(
        (cell.model.state_dict(), cell.optimizer.state_dict(), cell.scheduler.state_dict())
    )
    generator_states = {name: g.get_state() for name, g in cell.generators.items()}
    torch_state = torch.get_rng_state()
    try:
        cell.model.load_state_dict(payload["model"])
        cell.optimizer.load_state_dict(payload["optimizer"])
        cell.scheduler.load_state_dict(payload["scheduler"])
        for name, generator in cell.generators.items():
            generator.set_state(rng[name])
        torch.set_rng_state(rng_torch)
    except Exception as error:  # noqa: BLE001 - a mismatching checkpoint is reported, not fatal
        cell.model.load_state_dict(backup[0])
        cell.optimizer.load_state_dict(backup[1])
        cell.scheduler.load_state_dict(backup[2])
        for name, generator in cell.generators.items():
            generator.set_state(generator_states[name])
        torch.set_rng_state(torch_state)
        return f"checkpoint {path} does not match the model ({type(error).__name__}: {error})"
    if rng_cuda is not None and cell.device.type == "cuda":
        torch.cuda.set_rng_state_all(rng_cuda)
    state.resumed += 1
    cell.state = state
    return None


def set_aside_checkpoint(path: Path) -> Path | None:
    """Rename an unusable checkpoint to ``<name>.rejected`` (replacing an older one), so it
    neither blocks nor confuses a later run and can still be inspected."""
    target = path.with_name(path.name + ".rejected")
    try:
        os.replace(path, target)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return target


class CellLog:
    """The human-readable ``train.log`` of a cell, one line per epoch (appended, flushed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a") as handle:
            handle.write(f"{stamp} {message}\n")
        log.info(message)


def epoch_row(cell: Cell, seconds: float) -> dict:
    state = cell.state
    t0 = time.perf_counter()
    val_loss, val_acc = evaluate(cell.model, cell.splits.val_x, cell.splits.val_y, cell)
    test_loss, test_acc = evaluate(cell.model, cell.splits.test_x, cell.splits.test_y, cell)
    eval_seconds = time.perf_counter() - t0
    state.eval_seconds += eval_seconds
    count = max(state.running_count, 1)
    return {
        "epoch": state.epoch,
        "step": state.step,
        "lr": float(cell.optimizer.param_groups[0]["lr"]),
        "train_loss": state.running_loss / count if state.running_count else math.nan,
        "train_acc": state.running_correct / count if state.running_count else math.nan,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "seconds": seconds + eval_seconds,
    }


def run_epochs(cell: Cell, checkpoint: Path, cell_log: CellLog, flag: SignalFlag) -> None:
    """The training loop proper, from wherever ``cell.state`` stands."""
    state, plan = cell.state, cell.plan
    cell.model.train()
    while state.epoch < plan.epochs and state.status == "running":
        if state.permutation is None:
            state.permutation = epoch_permutation(cell)
            state.batch_in_epoch = 0
            state.running_loss = state.running_correct = 0.0
            state.running_count = 0
        t0 = time.perf_counter()
        while state.batch_in_epoch < plan.steps_per_epoch and state.step < plan.total_steps:
            if flag.received is not None:
                state.train_seconds += time.perf_counter() - t0
                save_checkpoint(cell, checkpoint)
                cell_log.write(
                    f"{flag.reason} at step {state.step}: checkpoint written, exiting "
                    f"with status {EXIT_CHECKPOINTED}"
                )
                raise Checkpointed()
            reason = train_step(cell, plan.batch(state.permutation, state.batch_in_epoch))
            state.batch_in_epoch += 1
            if cell.probes is not None and reason is None:
                cell.probes.run("step")
            if reason is not None:
                state.status = "diverged"
                state.diverged_step = state.step
                state.diverged_epoch = state.epoch
                state.diverged_reason = reason
                cell_log.write(f"diverged at epoch {state.epoch} step {state.step}: {reason}")
                break
        seconds = time.perf_counter() - t0
        state.train_seconds += seconds
        state.epoch += 1
        state.permutation = None
        row = epoch_row(cell, seconds)
        state.curves.append(row)
        cell_log.write(
            f"epoch {row['epoch']}/{plan.epochs} step {row['step']} lr {row['lr']:.4g} "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val acc {row['val_acc']:.4f} | test loss {row['test_loss']:.4f} "
            f"acc {row['test_acc']:.4f} | {row['seconds']:.1f}s"
        )
        if cell.probes is not None and state.status == "running":
            cell.probes.run("epoch")
        every = cell.config["checkpoint_every"]
        if every and state.epoch % every == 0 and state.epoch < plan.epochs:
            save_checkpoint(cell, checkpoint)
    if state.status == "running":
        state.status = "ok"


def summary_for(cell: Cell) -> dict:
    """The cell's ``summary.json`` (see README, "The cell's outputs")."""
    state, config = cell.state, cell.config
    train_loss, train_acc = evaluate(cell.model, cell.train_x, cell.train_y, cell)
    val_loss, val_acc = evaluate(cell.model, cell.splits.val_x, cell.splits.val_y, cell)
    test_loss, test_acc = evaluate(cell.model, cell.splits.test_x, cell.splits.test_y, cell)
    val_accs = [row["val_acc"] for row in state.curves]
    finite = [(acc, i) for i, acc in enumerate(val_accs) if not math.isnan(acc)]
    best_acc, best_index = max(finite, key=lambda t: (t[0], -t[1])) if finite else (math.nan, -1)
    return {
        "status": state.status,
        "diverged_step": state.diverged_step,
        "diverged_epoch": state.diverged_epoch,
        "diverged_reason": state.diverged_reason,
        "final": {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
        },
        "generalization_gap": train_acc - test_acc,
        "best_val_acc": best_acc,
        "best_val_epoch": state.curves[best_index]["epoch"] if best_index >= 0 else None,
        "epochs_run": state.epoch,
        "epochs_planned": cell.plan.epochs,
        "steps_run": state.step,
        "steps_planned": cell.plan.total_steps,
        "batch_size": cell.plan.batch_size,
        "num_train": len(cell.train_y),
        "num_val": len(cell.splits.val_y),
        "num_test": len(cell.splits.test_y),
        "num_classes": cell.splits.num_classes,
        "train_seconds": state.train_seconds,
        "eval_seconds": state.eval_seconds,
        "samples_per_second": state.samples_seen / state.train_seconds
        if state.train_seconds > 0
        else math.nan,
        "resumed": state.resumed,
        "probe_seconds": state.probe_seconds,
        "probe_errors": state.probe_errors,
        "parameters": parameter_counts_by_role(cell.model),
        "trainable_parameters": parameter_counts_by_role(cell.model, trainable_only=True),
        "device": str(cell.device),
        "autocast": "bfloat16" if autocast_enabled(cell) else None,
        "threads": torch.get_num_threads(),
        "versions": {
            "normstudy": normstudy.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "behaviour_versions": behaviour.parts_used(config),
        "seed": config["seed"],
        "provenance": {**state.runs[-1], "earlier_runs": state.runs[:-1]},
        "data": {"key": data_key(config), "digest": data_digest(cell.splits)},
    }


def write_outputs(cell: Cell, outdir: Path) -> dict:
    summary = summary_for(cell)
    write_parquet_atomic(outdir / "curves.parquet", curves_table(cell.state.curves))
    write_parquet_atomic(outdir / "probes.parquet", probe_records_table(cell.state.probe_records))
    write_json_atomic(outdir / "summary.json", summary)
    return summary


def train_cell(
    config: dict,
    outdir: str | Path,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    checkpoint: str | Path | None = None,
    threads: int | None = None,
    keep_checkpoint: bool = False,
    data_cache: str | Path | None = None,
    finished_copy: str | Path | None = None,
    stop_with_snakemake: bool = False,
) -> dict:
    """Train the cell ``config`` into ``outdir`` (resuming from ``checkpoint`` if usable).

    Bad input raises :class:`ConfigError` before anything is written to ``outdir``.
    ``data_cache`` is the workflow's tensor cache of the dataset (see
    :mod:`normstudy.datacache`); without it the dataset is loaded directly.
    Returns the summary. ``checkpoint`` defaults to ``outdir/checkpoint.pt``; it is
    removed after success unless ``keep_checkpoint``. With ``finished_copy``, the
    finished outputs are also copied there, and restored from there instead of training
    when the same config was finished by the same code before (:mod:`normstudy.finished`).
    """
    resolved = resolve_cell_config(config)
    cell = prepare(
        resolved, data_dir=data_dir, download=download, threads=threads, data_cache=data_cache
    )
    outdir = Path(outdir)
    if finished_copy is not None:
        restored = restore_if_finished(Path(finished_copy), outdir, resolved)
        if restored is not None:
            return restored
    checkpoint = Path(checkpoint) if checkpoint else outdir / "checkpoint.pt"
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "summary.json").unlink(missing_ok=True)
    write_json_atomic(outdir / "config.json", resolved)
    cell_log = CellLog(outdir / "train.log")
    ignored = restore_checkpoint(cell, checkpoint)
    if ignored:
        moved = set_aside_checkpoint(checkpoint)
        where = f"moved to {moved}" if moved else "deleted"
        cell_log.write(f"WARNING {ignored}; it is ignored ({where}) and training starts over")
        print(f"normstudy: warning: {ignored}; {where}; starting over", file=sys.stderr)
    elif cell.state.resumed:
        cell_log.write(
            f"resumed from {checkpoint} at epoch {cell.state.epoch} step {cell.state.step}"
        )
    else:
        cell_log.write(
            f"start {resolved['dataset']} {resolved['model']} norm={resolved['norm']} "
            f"freeze={resolved['freeze']} seed={resolved['seed']} on {cell.device}, "
            f"{cell.plan.epochs} epochs x {cell.plan.steps_per_epoch} steps"
        )
    cell.state.runs.append(provenance.gather(cell.device.type))
    if resolved["amp"] and not autocast_enabled(cell):
        cell_log.write(f"amp: true has no effect on {cell.device}: bf16 autocast runs only on CUDA")
    with SignalFlag(stop_with_snakemake) as flag:
        if cell.probes is not None and cell.state.step == 0 and not cell.state.resumed:
            cell.probes.run("init")
        run_epochs(cell, checkpoint, cell_log, flag)
    if cell.probes is not None:
        cell.probes.run("end")
    summary = write_outputs(cell, outdir)
    cell_log.write(
        f"done: status {summary['status']}, test acc {summary['final']['test_acc']:.4f}, "
        f"{summary['train_seconds']:.1f}s training"
    )
    if finished_copy is not None:
        save_finished_copy(outdir, Path(finished_copy), resolved)
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    return summary


def restore_if_finished(copy_dir: Path, outdir: Path, resolved: dict) -> dict | None:
    """The summary after restoring a finished copy of this cell into ``outdir``, or None."""
    usable, damaged = usable_copy(copy_dir, resolved)
    outdir.mkdir(parents=True, exist_ok=True)
    cell_log = CellLog(outdir / "train.log")
    if damaged:
        cell_log.write(f"WARNING {damaged}; it is ignored and the cell trains")
        print(f"normstudy: warning: {damaged}; training", file=sys.stderr)
    if not usable:
        return None
    summary = restore_finished_copy(copy_dir, outdir)
    cell_log.write(
        f"outputs restored from {copy_dir}: this config was finished before by the same code "
        "(e.g. in an earlier attempt of a retried SLURM job); not trained again"
    )
    return summary


def completed_summary(outdir: Path, config: dict) -> dict | None:
    """The summary of an already finished cell with this exact config, or None."""
    try:
        previous = read_json(outdir / "config.json")
        summary = read_json(outdir / "summary.json")
    except (OSError, ValueError):
        return None
    if canonical_json(previous) != canonical_json(resolve_cell_config(config)):
        return None
    return summary
