"""The finished cell's summary, curves and probe records."""

from __future__ import annotations

import math
import platform
import resource
import sys
from typing import TYPE_CHECKING

import torch

import normstudy
from normstudy import behaviour
from normstudy.datacache import data_digest
from normstudy.freeze import parameter_counts_by_role
from normstudy.grid import data_key
from normstudy.io import write_json_atomic, write_parquet_atomic
from normstudy.schemas import curves_table, probe_records_table
from normstudy.train.batches import autocast_enabled
from normstudy.train.loop import evaluate

if TYPE_CHECKING:
    from pathlib import Path

    from normstudy.train.state import Cell


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
        "process": process_usage(cell.device),
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


def process_usage(device: torch.device) -> dict:
    """What the process that finished the cell used (for a resumed cell, its last run):
    peak resident memory in MB, CPU seconds (user + system, all threads) and, on CUDA, the
    peak memory allocated by tensors. The memory needed to size ``mem_mb``; Snakemake's
    ``benchmark:`` cannot measure it once the warm worker runs the cell in a process forked
    by its server instead of under the job's shell. A cell forked by the warm worker
    counts the server's imported modules in its peak memory, as a fresh process would, but
    not their import time in its CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    max_rss = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return {
        "max_rss_mb": round(max_rss, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "gpu_max_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if device.type == "cuda"
        else None,
    }


def write_outputs(cell: Cell, outdir: Path) -> dict:
    summary = summary_for(cell)
    write_parquet_atomic(outdir / "curves.parquet", curves_table(cell.state.curves))
    write_parquet_atomic(outdir / "probes.parquet", probe_records_table(cell.state.probe_records))
    write_json_atomic(outdir / "summary.json", summary)
    return summary
