"""Minibatches as the model sees them: order, standardisation, augmentation, mixed
precision, and the loss."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from normstudy.data import DatasetSplits, augment_batch, standardize
from normstudy.norms import collect_regularizers

if TYPE_CHECKING:
    from normstudy.train.state import Cell

log = logging.getLogger("normstudy.train")


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


def autocast_enabled(cell: Cell) -> bool:
    """bf16 autocast runs only on CUDA: on CPU ``amp: true`` is a no-op, said in train.log."""
    return cell.config["amp"] and cell.device.type == "cuda"


def autocast(cell: Cell):
    return torch.autocast(
        device_type=cell.device.type, dtype=torch.bfloat16, enabled=autocast_enabled(cell)
    )
