"""From a resolved config to a ready run: data, model, freeze policy, optimizer, probes."""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING

import torch
from torch import nn

from normstudy.build import check_names, model_for, set_starting_point
from normstudy.config import ConfigError
from normstudy.data import DatasetSplits, load_dataset, standardize
from normstudy.datacache import DataCacheError, build_cache, load_cache
from normstudy.epochs import Plan
from normstudy.freeze import apply_freeze_policy
from normstudy.probes import parse_probe_entries
from normstudy.probes.runner import ProbeRunner
from normstudy.train.batches import data_loss, inputs_for_model, memory_format
from normstudy.train.runtime import (
    available_threads,
    choose_device,
    stream_seeds,
    use_deterministic_algorithms,
)
from normstudy.train.schedule import learning_rate_factor, optimizer_for
from normstudy.train.state import Cell, RunState

if TYPE_CHECKING:
    from pathlib import Path


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


def initialized_model(
    config: dict,
    splits: DatasetSplits,
    train_x: torch.Tensor,
    device: torch.device,
    seeds: dict[str, int],
) -> tuple[nn.Module, list[nn.Parameter]]:
    """The cell's model at its starting point on ``device`` and its trainable parameters
    under the freeze policy; torch's global RNG is seeded with the ``init`` stream first,
    so the same seed builds the same network."""
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
    return model, trainable


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
    model, trainable = initialized_model(config, splits, train_x, device, seeds)
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
        cell.probes = ProbeRunner(cell, entries, loss_fn=data_loss, model_inputs=inputs_for_model)
    return cell
