"""Can every cell of a plan be built? Checked once per distinct shape, before any training.

The workflow runs this (``normstudy check-build``) while planning, in a separate process,
whenever the plan's shapes have no stamp yet (:mod:`normstudy.buildplan`), and again as
the rule ``check_build`` that every training job depends on, which finds the stamp and
only copies it. Cells that share the dataset settings, model (at any depth), normalizer,
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
from normstudy.buildplan import build_groups
from normstudy.config import ConfigError, canonical_json
from normstudy.data.base import input_dtype
from normstudy.estimate import splits_for_estimate
from normstudy.freeze import apply_freeze_policy
from normstudy.probes import parse_probe_entries

MAX_REPORTED = 20


def build_problem(config: Mapping[str, Any]) -> str | None:
    """Why the cell ``config`` (resolved) cannot be built, or None."""
    from normstudy.epochs import Plan
    from normstudy.train import train_subset

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
            x = torch.zeros((2, *splits.input_shape), dtype=input_dtype(splits))
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
    """One line per distinct unbuildable shape (study, cell checked, how many cells share
    it, why), and the number of shapes checked (:func:`normstudy.buildplan.build_groups`)."""
    groups = build_groups(plan)
    problems = []
    for group in groups:
        problem = build_problem(group.config)
        if problem:
            others = group.cells - 1
            also = f" (and {others} more cell(s) of this shape)" if others else ""
            problems.append(
                f"study {group.study!r}, cell {canonical_json(group.point)}{also}: {problem}"
            )
    return problems, len(groups)
