"""Aggregation of finished cells into the study's Parquet tables (docs/design.md, "Contracts").

``cells.parquet`` has one row per (study, cell): the study, the cell id, the study's
axes, every scalar hyperparameter, the options as JSON, the status and the final
metrics; ``curves.parquet`` one row per cell x epoch; ``probes.parquet`` one row per
probe record. A cell shared by two studies has two rows in ``cells.parquet`` and one
set of curves and probe records.
"""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from normstudy import behaviour
from normstudy.catalog import PARAMETER_ROLES
from normstudy.io import read_json, write_parquet_atomic
from normstudy.probe_metrics import PROBE_METRICS, probe_metrics
from normstudy.schemas import CURVES_SCHEMA, PROBE_RECORDS_SCHEMA

HYPERPARAMETER_TYPES: dict[str, pa.DataType] = {
    "dataset": pa.string(),
    "val_size": pa.float64(),
    "split_seed": pa.int64(),
    "train_subset": pa.int64(),
    "augment": pa.bool_(),
    "model": pa.string(),
    "depth": pa.int64(),
    "width": pa.float64(),
    "skip": pa.bool_(),
    "norm_every": pa.int64(),
    "norm": pa.string(),
    "reg_strength": pa.float64(),
    "gamma_init": pa.string(),
    "init_from": pa.string(),
    "freeze": pa.string(),
    "optimizer": pa.string(),
    "lr": pa.float64(),
    "momentum": pa.float64(),
    "nesterov": pa.bool_(),
    "weight_decay": pa.float64(),
    "weight_decay_norm": pa.bool_(),
    "schedule": pa.string(),
    "lr_decay": pa.float64(),
    "warmup_epochs": pa.float64(),
    "batch_size": pa.int64(),
    "eval_batch_size": pa.int64(),
    "epochs": pa.int64(),
    "steps": pa.int64(),
    "full_batch": pa.bool_(),
    "shuffle": pa.bool_(),
    "seed": pa.int64(),
    "amp": pa.bool_(),
    "divergence_threshold": pa.float64(),
    "checkpoint_every": pa.int64(),
}
JSON_COLUMNS = (
    "dataset_options",
    "model_options",
    "norm_options",
    "milestones",
    "adam_betas",
    "probes",
)
METRICS = (
    "final_train_loss",
    "final_train_acc",
    "final_val_loss",
    "final_val_acc",
    "final_test_loss",
    "final_test_acc",
    "generalization_gap",
    "best_val_acc",
)
PROVENANCE_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "git_commit": (pa.string(), "hash of HEAD of the git checkout the code ran from"),
    "git_dirty": (pa.bool_(), "whether that checkout had uncommitted or untracked files"),
    "host": (pa.string(), "host name of the machine that finished the cell"),
    "gpu_name": (pa.string(), "GPU model (torch.cuda.get_device_name); null on CPU"),
    "cuda_version": (pa.string(), "CUDA version of torch (torch.version.cuda); null on CPU"),
    "cudnn_version": (pa.int64(), "cuDNN version (torch.backends.cudnn.version()); null on CPU"),
    "slurm_job_id": (pa.string(), "SLURM_JOB_ID of the job that finished the cell"),
    "slurm_array_job_id": (pa.string(), "SLURM_ARRAY_JOB_ID, in an array job"),
    "slurm_array_task_id": (pa.int64(), "SLURM_ARRAY_TASK_ID, in an array job"),
    "cuda_visible_devices": (pa.string(), "CUDA_VISIBLE_DEVICES as the training process saw it"),
}
"""Where the cell ran (``summary.json`` ``provenance``, :mod:`normstudy.provenance`): of the
run that finished it, if it was resumed; null where unknown or for cells from before it was
recorded. Not results: comparisons of two runs of the same cells leave them out."""

PROCESS_COLUMNS: dict[str, str] = {
    "max_rss_mb": "peak resident memory (MB) of the process that finished the cell "
    "(summary.json process; null for cells from before it was recorded)",
    "cpu_seconds": "CPU seconds (user + system) of the process that finished the cell; "
    "without the imports when the warm worker forked it",
    "gpu_max_allocated_mb": "peak CUDA memory allocated by tensors (MB); null off CUDA",
}
"""The cell's process usage, from ``summary.json`` (``normstudy.train.summary.process_usage``)."""

CELLS_SCHEMA = pa.schema(
    [
        pa.field("study", pa.string(), nullable=False),
        pa.field("cell_id", pa.string(), nullable=False),
        pa.field("axes", pa.list_(pa.string())),
        *(pa.field(k, t) for k, t in HYPERPARAMETER_TYPES.items()),
        *(pa.field(k, pa.string()) for k in JSON_COLUMNS),
        pa.field("status", pa.string(), nullable=False),
        pa.field("diverged_step", pa.int64()),
        pa.field("diverged_epoch", pa.int64()),
        *(pa.field(m, pa.float64()) for m in METRICS),
        *(
            pa.field(name, pa.float64(), metadata={"description": text})
            for name, (_, text) in PROBE_METRICS.items()
        ),
        pa.field("best_val_epoch", pa.int64()),
        pa.field("epochs_run", pa.int64()),
        pa.field("epochs_planned", pa.int64()),
        pa.field("steps_run", pa.int64()),
        pa.field("num_train", pa.int64()),
        pa.field("num_classes", pa.int64()),
        pa.field("train_seconds", pa.float64()),
        pa.field("eval_seconds", pa.float64()),
        pa.field("samples_per_second", pa.float64()),
        *(
            pa.field(name, pa.float64(), metadata={"description": text})
            for name, text in PROCESS_COLUMNS.items()
        ),
        pa.field("params_total", pa.int64()),
        pa.field("params_trainable", pa.int64()),
        *(pa.field(f"params_{role}", pa.int64()) for role in PARAMETER_ROLES),
        *(pa.field(f"trainable_{role}", pa.int64()) for role in PARAMETER_ROLES),
        pa.field("device", pa.string()),
        pa.field(
            "behaviour_versions",
            pa.string(),
            metadata={
                "description": "JSON part -> behaviour version the cell was made by "
                "(normstudy.behaviour; version 1 for cells from before versions were recorded)"
            },
        ),
        *(
            pa.field(name, kind, metadata={"description": text})
            for name, (kind, text) in PROVENANCE_COLUMNS.items()
        ),
    ],
    metadata={
        "description": "one row per (study, cell); hyperparameter columns hold the resolved "
        "config, options and lists as JSON; a grid axis inside an options mapping also gets "
        "its own column named by its dotted key (float64 if numeric, else string); metrics "
        "are measured in eval mode on the full splits at the end; accuracies are fractions; "
        "git_commit ... cuda_visible_devices record where the cell ran (null if unknown)"
    },
)

READ_THREADS = min(8, os.cpu_count() or 1)
"""Threads that read cells' Parquet files during aggregation."""

CELL_CURVES_SCHEMA = pa.schema([pa.field("cell_id", pa.string(), nullable=False), *CURVES_SCHEMA])
CELL_PROBES_SCHEMA = pa.schema(
    [pa.field("cell_id", pa.string(), nullable=False), *PROBE_RECORDS_SCHEMA]
)


REBUILD_HINT = "delete the cell directory and run the workflow again to retrain it"


class UnreadableCellError(RuntimeError):
    """A cell whose outputs cannot be read; the message names the cell and the file."""


def read_summary(cell_dir: Path) -> dict[str, Any]:
    """The cell's ``summary.json``; a truncated, corrupt or incomplete one is refused."""
    path = cell_dir / "summary.json"
    try:
        summary = read_json(path)
    except (OSError, ValueError) as error:
        raise UnreadableCellError(
            f"cell {cell_dir.name}: cannot read {path}: {error}; {REBUILD_HINT}"
        ) from error
    if not isinstance(summary, dict):
        raise UnreadableCellError(
            f"cell {cell_dir.name}: {path} is not a JSON object; {REBUILD_HINT}"
        )
    return summary


def cell_row(study: str, axes: list[str], point: dict, config: dict, summary: dict) -> dict:
    row: dict[str, Any] = {"study": study, "cell_id": config["cell_id"], "axes": axes}
    for key in HYPERPARAMETER_TYPES:
        row[key] = config[key]
    for key in JSON_COLUMNS:
        row[key] = json.dumps(config[key], sort_keys=True)
    for key, value in point.items():
        if "." in key:
            row[key] = value
    row["status"] = summary["status"]
    row["diverged_step"] = summary["diverged_step"]
    row["diverged_epoch"] = summary["diverged_epoch"]
    final = summary["final"]
    for split in ("train", "val", "test"):
        for measure in ("loss", "acc"):
            row[f"final_{split}_{measure}"] = final[f"{split}_{measure}"]
    for key in ("generalization_gap", "best_val_acc", "best_val_epoch", "epochs_run"):
        row[key] = summary[key]
    for key in ("epochs_planned", "steps_run", "num_train", "num_classes", "train_seconds"):
        row[key] = summary[key]
    for key in ("eval_seconds", "samples_per_second", "device"):
        row[key] = summary[key]
    # Cells finished before these were recorded have none: their columns stay null.
    process = summary.get("process") or {}
    for key in PROCESS_COLUMNS:
        row[key] = process.get(key)
    # Cells finished before provenance was recorded have none: their columns stay null.
    provenance = summary.get("provenance") or {}
    for key in PROVENANCE_COLUMNS:
        row[key] = provenance.get(key)
    row["behaviour_versions"] = json.dumps(
        behaviour.recorded_versions(config, summary), sort_keys=True
    )
    row["params_total"] = sum(summary["parameters"].values())
    row["params_trainable"] = sum(summary["trainable_parameters"].values())
    for role in PARAMETER_ROLES:
        # Summaries written before a role existed (random_subset) have none of it.
        row[f"params_{role}"] = summary["parameters"].get(role, 0)
        row[f"trainable_{role}"] = summary["trainable_parameters"].get(role, 0)
    return row


def option_axis_text(value: object) -> str:
    """How a text option-axis column of ``cells.parquet`` holds a value (``2`` -> ``"2"``,
    ``True`` -> ``"True"``): an axis whose values are not all numbers is stored as text."""
    return value if isinstance(value, str) else str(value)


def option_axis_fields(rows: list[dict]) -> list[pa.Field]:
    dotted = sorted({key for row in rows for key in row if "." in key})
    fields = []
    for key in dotted:
        values = [row.get(key) for row in rows if row.get(key) is not None]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        fields.append(pa.field(key, pa.float64() if numeric else pa.string()))
    return fields


def cells_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([*CELLS_SCHEMA, *option_axis_fields(rows)], metadata=CELLS_SCHEMA.metadata)
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type) and "." in field.name:
            values = [None if v is None else option_axis_text(v) for v in values]
        if pa.types.is_floating(field.type):
            values = [None if v is None else float(v) for v in values]
        columns[field.name] = values
    return pa.table(columns, schema=schema)


def read_table(path: Path, schema: pa.Schema, cell: str) -> pa.Table:
    """One cell's Parquet file with ``schema``.

    ``ParquetFile.read`` on one thread: a cell's file is small, and ``pq.read_table``
    (the dataset API, a thread pool) costs several times more per file.
    """
    try:
        table = pq.ParquetFile(path).read(use_threads=False)
    except (OSError, pa.ArrowInvalid) as error:
        raise UnreadableCellError(
            f"cell {cell}: cannot read {path}: {error}; {REBUILD_HINT}"
        ) from error
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (ValueError, pa.ArrowInvalid) as error:
        raise UnreadableCellError(
            f"cell {cell}: {path} does not have the expected columns ({error}); {REBUILD_HINT}"
        ) from error


class CellTables:
    """Per-cell tables of one kind, with a ``cell_id`` column in front.

    Every ``COMPACT_EVERY`` cells the small per-cell tables are merged into one chunk, so
    memory holds about the table itself rather than thousands of small tables.
    """

    COMPACT_EVERY = 256

    def __init__(self, cell_schema: pa.Schema):
        self.cell_schema = cell_schema
        self.chunks: list[pa.Table] = []
        self.pending: list[pa.Table] = []
        self.pending_cells: list[str] = []

    def add(self, cell: str, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_cells.append(cell)
        if len(self.pending) >= self.COMPACT_EVERY:
            self.compact()

    def compact(self) -> None:
        if not self.pending:
            return
        rows = pa.concat_tables(self.pending).combine_chunks()
        counts = np.array([table.num_rows for table in self.pending])
        cells = np.arange(len(self.pending_cells), dtype=np.int32)
        cell_ids = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(cells, counts)), pa.array(self.pending_cells, pa.string())
        )
        column = cell_ids.cast(pa.string())
        columns = [column, *(rows.column(name) for name in self.cell_schema.names[1:])]
        self.chunks.append(pa.Table.from_arrays(columns, schema=self.cell_schema))
        self.pending, self.pending_cells = [], []

    def table(self) -> pa.Table:
        self.compact()
        return pa.concat_tables(self.chunks) if self.chunks else self.cell_schema.empty_table()


def read_cell_tables(cells_dir: Path, cell: str) -> tuple[pa.Table, pa.Table | None]:
    """A cell's curves and its probe records (None if it wrote none)."""
    cell_dir = cells_dir / cell
    curves = read_table(cell_dir / "curves.parquet", CURVES_SCHEMA, cell)
    probe_path = cell_dir / "probes.parquet"
    if not probe_path.exists():
        return curves, None
    return curves, read_table(probe_path, PROBE_RECORDS_SCHEMA, cell)


def cell_problems(cells_dir: Path, cell: str, entry: tuple[str, list, dict], config: dict):
    """What is wrong with each of the cell's three outputs (empty if nothing)."""
    problems = []
    cell_dir = cells_dir / cell
    try:
        summary = read_summary(cell_dir)
        try:
            cell_row(*entry[:2], entry[2], {**config, "cell_id": cell}, summary)
        except (KeyError, TypeError) as error:
            raise UnreadableCellError(
                f"cell {cell}: {cell_dir / 'summary.json'} lacks {error}"
            ) from error
    except UnreadableCellError as error:
        problems.append(str(error))
    for name, schema in (
        ("curves.parquet", CURVES_SCHEMA),
        ("probes.parquet", PROBE_RECORDS_SCHEMA),
    ):
        try:
            read_table(cell_dir / name, schema, cell)
        except UnreadableCellError as error:
            problems.append(str(error))
    return [problem.replace(f"; {REBUILD_HINT}", "") for problem in problems]


def check_cells(plan: dict, cells_dir: str | Path) -> dict[str, list[str]]:
    """Every cell of ``plan`` whose ``summary.json``, ``curves.parquet`` or
    ``probes.parquet`` is missing, truncated, corrupt or incomplete, with what is wrong:
    all of them at once (pyarrow reads every Parquet file whole)."""
    cells_dir = Path(cells_dir)
    entries = {}
    for study, entry in plan["studies"].items():
        for cell, point in zip(entry["cells"], entry["points"], strict=True):
            entries.setdefault(cell, (study, entry["axes"], point))
    cells = list(entries)
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        found = pool.map(
            lambda cell: cell_problems(cells_dir, cell, entries[cell], plan["cells"][cell]), cells
        )
        return {cell: problems for cell, problems in zip(cells, found, strict=True) if problems}


def damaged_cells_report(damaged: dict[str, list[str]], cells_dir: str | Path) -> str:
    """The message for damaged cells: each problem, then the command that repairs them."""
    count = sum(len(problems) for problems in damaged.values())
    lines = [
        f"{count} damaged output file(s) in {len(damaged)} cell(s); the tables are not "
        "rebuilt (the existing ones are kept):"
    ]
    lines += [f"  {problem}" for problems in damaged.values() for problem in problems]
    targets = " ".join(f"{Path(cells_dir) / cell / 'summary.json'}" for cell in damaged)
    lines += [
        "Repair them (each cell is restored from its finished copy in results/checkpoints/ "
        "if intact, else trained again), then the tables are built:",
        f"  snakemake --forcerun {targets}",
    ]
    return "\n".join(lines)


class MixedVersionsError(RuntimeError):
    """Cells of the tables made by different versions of one part, or by versions that are
    not current: tables that would mix old and new code silently."""


def version_problems(rows: list[dict], plan: dict) -> list[str]:
    """Why the rows of ``cells.parquet`` must not be combined: planned cells made by a
    version of a part that is not the current one, and parts with several versions."""
    problems = []
    records = [json.loads(row["behaviour_versions"]) for row in rows]
    for row, made in zip(rows, records, strict=True):
        config = plan["cells"][row["cell_id"]]
        changed = behaviour.outdated_parts(config, {"behaviour_versions": made})
        if changed:
            problems.append(
                f"cell {row['cell_id']} was made by {behaviour.describe_outdated(changed)}"
            )
    mixed = behaviour.mixed_versions(records)
    problems.extend(
        f"part {part} has versions {', '.join(map(str, versions))} among the cells"
        for part, versions in sorted(mixed.items())
    )
    return sorted(set(problems))


def aggregate(plan: dict, cells_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write cells/curves/probes tables for every cell of ``plan`` (see :func:`plan_document`).

    The cells' Parquet files are read by a pool of threads (pyarrow decodes without the
    GIL); the tables keep the plan's cell order.
    """
    cells_dir, out_dir = Path(cells_dir), Path(out_dir)
    rows = []
    for study, entry in plan["studies"].items():
        for cell, point in zip(entry["cells"], entry["points"], strict=True):
            summary = read_summary(cells_dir / cell)
            config = {**plan["cells"][cell], "cell_id": cell}
            try:
                rows.append(cell_row(study, entry["axes"], point, config, summary))
            except (KeyError, TypeError) as error:
                raise UnreadableCellError(
                    f"cell {cell}: {cells_dir / cell / 'summary.json'} lacks {error}; "
                    f"{REBUILD_HINT}"
                ) from error
    problems = version_problems(rows, plan)
    if problems:
        raise MixedVersionsError(
            f"{len(problems)} problem(s) of behaviour versions; the tables are not written, "
            "so no figure or comparison mixes old and new code:\n  "
            + "\n  ".join(problems[:20])
            + "\nA cell's id includes its versions, so this means its summary.json was made "
            "by other code than its id says: delete those cell directories and run again."
        )
    unique_cells = list(dict.fromkeys(row["cell_id"] for row in rows))
    curves = CellTables(CELL_CURVES_SCHEMA)
    probes = CellTables(CELL_PROBES_SCHEMA)
    from_probes = {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        read = pool.map(read_cell_tables, itertools.repeat(cells_dir), unique_cells)
        for cell, (curve, probe) in zip(unique_cells, read, strict=True):
            curves.add(cell, curve)
            from_probes[cell] = probe_metrics(probe)
            if probe is not None:
                probes.add(cell, probe)
    for row in rows:
        row.update(from_probes[row["cell_id"]])
    write_parquet_atomic(out_dir / "cells.parquet", cells_table(rows))
    write_parquet_atomic(out_dir / "curves.parquet", curves.table())
    write_parquet_atomic(out_dir / "probes.parquet", probes.table())
    return {"cells": len(rows), "unique_cells": len(unique_cells)}
