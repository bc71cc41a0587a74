"""Train one cell end to end, or return the finished result already on disk."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from normstudy import provenance
from normstudy.config import canonical_json, resolve_cell_config
from normstudy.finished import restore_finished_copy, save_finished_copy, usable_copy
from normstudy.io import read_json, write_json_atomic
from normstudy.train.batches import autocast_enabled
from normstudy.train.checkpoint import restore_checkpoint, set_aside_checkpoint
from normstudy.train.loop import CellLog, run_epochs
from normstudy.train.prepare import prepare
from normstudy.train.runtime import SignalFlag
from normstudy.train.summary import write_outputs

if TYPE_CHECKING:
    from normstudy.train.state import Cell

log = logging.getLogger("normstudy.train")


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
    cell_log = resume_or_start(cell, checkpoint, CellLog(outdir / "train.log"))
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


def resume_or_start(cell: Cell, checkpoint: Path, cell_log: CellLog) -> CellLog:
    """Resume ``cell`` from ``checkpoint`` if it is usable (an unusable one is set aside,
    with a warning), and say in the cell's log which it was."""
    config = cell.config
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
            f"start {config['dataset']} {config['model']} norm={config['norm']} "
            f"freeze={config['freeze']} seed={config['seed']} on {cell.device}, "
            f"{cell.plan.epochs} epochs x {cell.plan.steps_per_epoch} steps"
        )
    cell.state.runs.append(provenance.gather(cell.device.type))
    if config["amp"] and not autocast_enabled(cell):
        cell_log.write(f"amp: true has no effect on {cell.device}: bf16 autocast runs only on CUDA")
    return cell_log


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
