"""Can every cell of a plan be built? Checked once per distinct shape, before any training.

The workflow runs this (``normstudy check-build``, rule ``check_build``) as its first job:
every training job depends on it. Cells that share the dataset settings, model, normalizer,
freeze policy, batch size and probes are one check: the dataset is loaded (a same-shaped
stand-in for a standard dataset whose files may not be downloaded yet), the model is built
on the ``meta`` device (no memory, no initialisation cost) and run on two meta examples,
the freeze policy and the probes' options are applied, and the batch size is checked
against the training set. Nothing is trained. The study config parser (:mod:`normstudy.grid`)
must not import torch, so these checks, which need the model code, live here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from normstudy.build import check_names, model_for
from normstudy.config import ConfigError, canonical_json
from normstudy.estimate import splits_for_estimate
from normstudy.freeze import apply_freeze_policy
from normstudy.probes import parse_probe_entries

BUILD_KEYS = (
    "dataset",
    "dataset_options",
    "val_size",
    "split_seed",
    "train_subset",
    "model",
    "depth",
    "width",
    "skip",
    "norm_every",
    "model_options",
    "norm",
    "norm_options",
    "gamma_init",
    "freeze",
    "batch_size",
    "full_batch",
    "probes",
)
MAX_REPORTED = 20


def build_problem(config: Mapping[str, Any]) -> str | None:
    """Why the cell ``config`` (resolved) cannot be built, or None."""
    from normstudy.train import Plan, train_subset

    config = dict(config)
    try:
        check_names(config)
        try:
            for entry in parse_probe_entries(config["probes"]):
                entry.build()
        except (ValueError, TypeError) as error:
            raise ConfigError(f"config key 'probes': {error}") from None
        try:
            splits, _ = splits_for_estimate(config)
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"dataset {config['dataset']!r} with dataset_options "
                f"{canonical_json(config['dataset_options'])}: {error}"
            ) from None
        _, train_y = train_subset(splits, config["train_subset"], config["split_seed"])
        Plan.for_config(config, len(train_y))
        with torch.device("meta"):
            model = model_for(config, splits)
            x = torch.zeros((2, *splits.input_shape))
            try:
                copy.deepcopy(model).train()(x)
            except (RuntimeError, ValueError) as error:
                raise ConfigError(f"the model cannot run on this dataset: {error}") from None
        try:
            apply_freeze_policy(model, config["freeze"])
        except ValueError as error:
            raise ConfigError(f"config key 'freeze': {error}") from None
    except ConfigError as error:
        return str(error)
    return None


def plan_build_problems(plan: Mapping[str, Any]) -> tuple[list[str], int]:
    """One line per distinct unbuildable shape (study, first cell, how many cells share it,
    why), and the number of shapes checked."""
    first: dict[str, tuple[str, Any]] = {}
    count: dict[str, int] = {}
    for study, entry in plan["studies"].items():
        for cell, point in zip(entry["cells"], entry["points"], strict=True):
            config = plan["cells"][cell]
            key = canonical_json({k: config[k] for k in BUILD_KEYS})
            first.setdefault(key, (study, point, config))
            count[key] = count.get(key, 0) + 1
    problems = []
    data_first = sorted(
        first,
        key=lambda key: canonical_json(
            {k: first[key][2][k] for k in ("dataset", "dataset_options", "val_size", "split_seed")}
        ),
    )  # cells of one dataset in a row: its (cached) splits are loaded once
    for key in data_first:
        study, point, config = first[key]
        problem = build_problem(config)
        if problem:
            others = count[key] - 1
            also = f" (and {others} more cell(s) of this shape)" if others else ""
            problems.append(f"study {study!r}, cell {canonical_json(point)}{also}: {problem}")
    return problems, len(first)
