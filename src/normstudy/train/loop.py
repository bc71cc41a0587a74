"""The training loop: steps, evaluation after every epoch, divergence, checkpoints."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from normstudy.train.batches import (
    autocast,
    epoch_permutation,
    model_batch,
    training_batch,
    training_losses,
)
from normstudy.train.checkpoint import save_checkpoint
from normstudy.train.runtime import EXIT_CHECKPOINTED, Checkpointed, SignalFlag

if TYPE_CHECKING:
    from pathlib import Path

    from normstudy.train.state import Cell

log = logging.getLogger("normstudy.train")


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
                stopped = f"{flag.reason} at step {state.step}"
                cell_log.write(
                    f"{stopped}: checkpoint written, exiting with status {EXIT_CHECKPOINTED}"
                )
                # Snakemake's error names the job's log (stderr), not train.log: say it there.
                print(
                    f"normstudy: {stopped} of {plan.total_steps}: checkpoint written to "
                    f"{checkpoint}; the next attempt or run of this cell resumes from it "
                    f"(epochs: {cell_log.path})",
                    file=sys.stderr,
                    flush=True,
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
