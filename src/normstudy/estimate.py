"""What a study costs on this device: measured training-step and evaluation times, scaled
to every cell of a plan.

Cells that cost the same per step (same data shape, model, normalizer, freeze policy,
batch size, ...: :data:`COST_KEYS`; not seed, learning rate or schedule) form one group,
and one cell of each group is built exactly as ``normstudy train`` builds it
(:func:`normstudy.train.prepare`) and timed for a few optimizer steps (after one warm-up
step; the fastest counts, being the least disturbed by other processes, as :mod:`timeit`
advises) and an evaluation pass. Its hours are then

    total_steps x seconds per step + epochs x (validation + test examples) x seconds per
    evaluated example,

summed over the group's cells, with the steps and examples :mod:`normstudy.train` takes
(:class:`normstudy.epochs.Plan`: ``n // batch`` steps per shuffled epoch, the partial
last batch too in an unshuffled one, one step of everything for ``full_batch``).
Standard datasets whose files are absent are replaced by random images of the same shape
and count (:func:`~normstudy.data.torchvision_sets.stand_in_splits`; Sentiment140 by
random token ids, :func:`~normstudy.data.text.sentiment140_stand_in`): a step's cost does
not depend on pixel values or words. Not counted: probes, checkpoint writes, job start-up
(see BENCHMARKS.md for the per-cell overhead) and queueing.

A step too slow to time at its real batch size within ``step_budget`` seconds (deep, wide
ResNets on a CPU) is timed at a smaller batch and scaled linearly in the batch size; such
groups are flagged ``scaled``. On a GPU the real batch is almost always within budget.
Model FLOPs per training example (forward and backward) and per evaluated example
(forward), counted by :mod:`normstudy.flops` (matrix products, convolutions and recurrent
layers; normalization and elementwise work is not counted), give each study's PFLOPs, a
device-independent size; ``timed=False`` counts them without timing anything, and
:func:`assumed_hours` turns them into hours on an assumed device (peak TFLOP/s x
utilisation): ``normstudy estimate config.yaml OUT --scale paper --flops-only
--assume-tflops 19.5 --utilisation 0.3`` prints the paper-scale table without a GPU.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from normstudy.config import canonical_json
from normstudy.data import DatasetSplits, load_dataset
from normstudy.data.text import sentiment140_stand_in
from normstudy.data.torchvision_sets import SOURCES, stand_in_splits
from normstudy.epochs import Plan as TrainingPlan
from normstudy.flops import flops_per_example
from normstudy.grid import Plan

COST_KEYS = (
    "dataset",
    "dataset_options",
    "val_size",
    "split_seed",
    "train_subset",
    "augment",
    "model",
    "depth",
    "width",
    "skip",
    "norm_every",
    "model_options",
    "norm",
    "norm_options",
    "freeze",
    "optimizer",
    "nesterov",
    "batch_size",
    "eval_batch_size",
    "full_batch",
    "amp",
)
GROUP_KEYS = ("dataset", "model", "depth", "width", "norm", "freeze")
MEASURED_KEYS = (
    "batch_size",
    "stand_in_data",
    "device",
    "threads",
    "measured_batch",
    "scaled",
    "step_seconds",
    "eval_seconds_per_example",
    "train_gflops_per_example",
    "eval_gflops_per_example",
)


@dataclass
class GroupCost:
    """The measured cost of one group of cells that cost the same per step."""

    dataset: str
    model: str
    depth: int | None
    width: float | None
    norm: str
    freeze: str
    batch_size: int
    cells: int
    studies: str
    stand_in_data: bool
    device: str
    threads: int
    measured_batch: int
    scaled: bool
    step_seconds: float
    eval_seconds_per_example: float
    train_gflops_per_example: float
    eval_gflops_per_example: float
    steps_per_epoch: int
    epoch_seconds: float
    hours: float
    pflop: float


def cost_key(config: Mapping[str, Any]) -> str:
    return canonical_json({key: config[key] for key in COST_KEYS})


def cost_groups(plan: Plan) -> dict[str, list[str]]:
    """Cell ids grouped by :func:`cost_key`, in plan order."""
    groups: dict[str, list[str]] = {}
    for cell_id, config in plan.cells.items():
        groups.setdefault(cost_key(config), []).append(cell_id)
    return groups


@functools.lru_cache(maxsize=4)
def _splits(dataset: str, options: str, val_size: float, split_seed: int):
    options_dict = json.loads(options)
    if dataset in SOURCES:
        return stand_in_splits(dataset, val_size=val_size, split_seed=split_seed), True
    if dataset == "sentiment140":
        return sentiment140_stand_in(val_size=val_size, split_seed=split_seed, **options_dict), True
    loaded = load_dataset(dataset, val_size=val_size, split_seed=split_seed, **options_dict)
    return loaded, False


def splits_for_estimate(config: Mapping[str, Any]) -> tuple[DatasetSplits, bool]:
    """The cell's dataset, or a same-shaped stand-in for a standard dataset (second value)."""
    return _splits(
        config["dataset"],
        canonical_json(config["dataset_options"]),
        config["val_size"],
        config["split_seed"],
    )


def _timed_steps(cell, batch: int, steps: int) -> list[float]:
    from normstudy.train import train_step

    n = len(cell.train_y)
    times = []
    for step in range(steps):
        start = (step * batch) % max(n - batch + 1, 1)
        indices = torch.arange(start, start + batch)
        if cell.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(cell, indices)
        if cell.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def measure_group(
    config: Mapping[str, Any],
    *,
    steps: int = 3,
    step_budget: float = 5.0,
    threads: int | None,
    timed: bool = True,
) -> dict[str, Any]:
    """FLOPs, and unless not ``timed`` seconds, per optimizer step and per evaluated
    example of the cell ``config``."""
    from normstudy.train import choose_device, evaluate, prepare, train_subset

    splits, stand_in = splits_for_estimate(config)
    train_flops, eval_flops = flops_per_example(config, splits)
    num_train = len(train_subset(splits, config["train_subset"], config["split_seed"])[1])
    batch = TrainingPlan.for_config(dict(config), num_train).batch_size
    result = {
        "batch_size": batch,
        "num_train": num_train,
        "num_eval": len(splits.val_y) + len(splits.test_y),
        "stand_in_data": stand_in,
        "device": str(choose_device()),
        "threads": threads or torch.get_num_threads(),
        "measured_batch": 0,
        "scaled": False,
        "step_seconds": math.nan,
        "eval_seconds_per_example": math.nan,
        "train_gflops_per_example": train_flops / 1e9,
        "eval_gflops_per_example": eval_flops / 1e9,
    }
    if not timed:
        return result
    measured = {**config, "probes": [], "divergence_threshold": math.inf}
    cell = prepare(measured, data_dir=None, download=False, threads=threads, splits=splits)
    result["threads"] = torch.get_num_threads()
    probe_batch = min(batch, 8)
    probe = min(_timed_steps(cell, probe_batch, 2))
    predicted = probe * batch / probe_batch
    measured_batch = batch
    if predicted > step_budget:
        measured_batch = max(probe_batch, int(batch * step_budget / predicted))
    _timed_steps(cell, measured_batch, 1)
    step_seconds = min(_timed_steps(cell, measured_batch, steps)) * batch / measured_batch
    eval_batch = config["eval_batch_size"] or batch
    eval_n = min(len(cell.splits.test_y), max(eval_batch, 1), 2 * measured_batch)
    t0 = time.perf_counter()
    evaluate(cell.model, cell.splits.test_x[:eval_n], cell.splits.test_y[:eval_n], cell)
    result.update(
        measured_batch=measured_batch,
        scaled=measured_batch != batch,
        step_seconds=step_seconds,
        eval_seconds_per_example=(time.perf_counter() - t0) / eval_n,
    )
    return result


def cell_cost(config: Mapping[str, Any], measured: Mapping[str, Any]) -> tuple[float, float]:
    """Hours and PFLOPs of one cell from its group's measured step and evaluation costs.

    Its steps are those :mod:`normstudy.train` takes (:class:`normstudy.epochs.Plan`);
    hours count each step at the measured full-batch time (an unshuffled epoch's partial
    last batch costs a step, at most), FLOPs count the examples actually trained on."""
    plan = TrainingPlan.for_config(dict(config), measured["num_train"])
    evaluated = plan.epochs * measured["num_eval"]
    seconds = (
        plan.total_steps * measured["step_seconds"]
        + evaluated * measured["eval_seconds_per_example"]
    )
    gflops = (
        plan.examples * measured["train_gflops_per_example"]
        + evaluated * measured["eval_gflops_per_example"]
    )
    return seconds / 3600, gflops / 1e6


def assumed_hours(pflop: float, tflops: float, utilisation: float) -> float:
    """Hours that ``pflop`` PFLOPs take on a device of peak ``tflops`` TFLOP/s of which
    training achieves the fraction ``utilisation`` (an assumption, not a measurement)."""
    return pflop * 1e3 / (tflops * utilisation) / 3600


@dataclass
class Estimate:
    """The cost groups of a plan and the estimated hours and PFLOPs of each cell."""

    groups: list[GroupCost]
    cost_of_cell: dict[str, tuple[float, float]]

    def study_rows(self, plan: Plan) -> list[dict[str, Any]]:
        """Cells, hours and PFLOPs per study; the last row is the plan's total (shared cells
        counted once)."""

        def row(study: str, cell_ids) -> dict[str, Any]:
            costs = [self.cost_of_cell[cell_id] for cell_id in cell_ids]
            return {
                "study": study,
                "cells": len(costs),
                "hours": sum(hours for hours, _ in costs),
                "pflop": sum(pflop for _, pflop in costs),
            }

        rows = [row(name, [c.id for c in study.cells]) for name, study in plan.studies.items()]
        return [*rows, row("total", list(self.cost_of_cell))]


def estimate_plan(
    plan: Plan,
    *,
    steps: int = 3,
    step_budget: float = 5.0,
    threads: int | None = None,
    timed: bool = True,
    progress=None,
) -> Estimate:
    """Measure one cell of every cost group of ``plan`` and scale to all its cells."""
    study_of: dict[str, list[str]] = {}
    for name, study in plan.studies.items():
        for cell in study.cells:
            study_of.setdefault(cell.id, []).append(name)
    groups, cost_of_cell = [], {}
    all_groups = cost_groups(plan)
    for index, cell_ids in enumerate(all_groups.values()):
        config = plan.cells[cell_ids[0]]
        m = measure_group(
            config, steps=steps, step_budget=step_budget, threads=threads, timed=timed
        )
        for cell_id in cell_ids:
            cost_of_cell[cell_id] = cell_cost(plan.cells[cell_id], m)
        # The steps train.py takes per epoch (normstudy.epochs): n // batch shuffled,
        # the partial last batch too unshuffled, 1 for full_batch.
        steps_per_epoch = TrainingPlan.for_config(dict(config), m["num_train"]).steps_per_epoch
        group = GroupCost(
            **{key: config[key] for key in GROUP_KEYS},
            **{key: m[key] for key in MEASURED_KEYS},
            cells=len(cell_ids),
            studies=",".join(sorted({s for c in cell_ids for s in study_of.get(c, [])})),
            steps_per_epoch=steps_per_epoch,
            epoch_seconds=steps_per_epoch * m["step_seconds"]
            + m["num_eval"] * m["eval_seconds_per_example"],
            hours=sum(cost_of_cell[c][0] for c in cell_ids),
            pflop=sum(cost_of_cell[c][1] for c in cell_ids),
        )
        groups.append(group)
        if progress is not None:
            progress(index + 1, len(all_groups), group)
    return Estimate(groups, cost_of_cell)
