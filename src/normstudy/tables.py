"""Aggregation of finished cells into the study's Parquet tables (DESIGN.md, "Tables").

``cells.parquet`` has one row per (study, cell): the study, the cell id, the study's
axes, every scalar hyperparameter, the options as JSON, the status and the final
metrics; ``curves.parquet`` one row per cell x epoch; ``probes.parquet`` one row per
probe record. A cell shared by two studies has two rows in ``cells.parquet`` and one
set of curves and probe records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from normstudy.freeze import ROLES
from normstudy.io import read_json, write_parquet_atomic
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
        pa.field("best_val_epoch", pa.int64()),
        pa.field("epochs_run", pa.int64()),
        pa.field("epochs_planned", pa.int64()),
        pa.field("steps_run", pa.int64()),
        pa.field("num_train", pa.int64()),
        pa.field("num_classes", pa.int64()),
        pa.field("train_seconds", pa.float64()),
        pa.field("eval_seconds", pa.float64()),
        pa.field("samples_per_second", pa.float64()),
        pa.field("params_total", pa.int64()),
        pa.field("params_trainable", pa.int64()),
        *(pa.field(f"params_{role}", pa.int64()) for role in ROLES),
        *(pa.field(f"trainable_{role}", pa.int64()) for role in ROLES),
        pa.field("device", pa.string()),
    ],
    metadata={
        "description": "one row per (study, cell); hyperparameter columns hold the resolved "
        "config, options and lists as JSON; a grid axis inside an options mapping also gets "
        "its own column named by its dotted key (float64 if numeric, else string); metrics "
        "are measured in eval mode on the full splits at the end; accuracies are fractions"
    },
)

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
    row["params_total"] = sum(summary["parameters"].values())
    row["params_trainable"] = sum(summary["trainable_parameters"].values())
    for role in ROLES:
        row[f"params_{role}"] = summary["parameters"][role]
        row[f"trainable_{role}"] = summary["trainable_parameters"][role]
    return row


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
            values = [None if v is None else str(v) for v in values]
        if pa.types.is_floating(field.type):
            values = [None if v is None else float(v) for v in values]
        columns[field.name] = values
    return pa.table(columns, schema=schema)


def read_table(path: Path, schema: pa.Schema, cell: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise UnreadableCellError(
            f"cell {cell}: cannot read {path}: {error}; {REBUILD_HINT}"
        ) from error
    try:
        return table.cast(schema)
    except (ValueError, pa.ArrowInvalid) as error:
        raise UnreadableCellError(
            f"cell {cell}: {path} does not have the expected columns ({error}); {REBUILD_HINT}"
        ) from error


def with_cell_column(table: pa.Table, cell: str, schema: pa.Schema) -> pa.Table:
    column = pa.array([cell] * table.num_rows, pa.string())
    return table.add_column(0, pa.field("cell_id", pa.string(), nullable=False), column).cast(
        schema
    )


def aggregate(plan: dict, cells_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write cells/curves/probes tables for every cell of ``plan`` (see :func:`plan_document`)."""
    cells_dir, out_dir = Path(cells_dir), Path(out_dir)
    rows, curves, probes = [], [], []
    seen: set[str] = set()
    for study, entry in plan["studies"].items():
        for cell, point in zip(entry["cells"], entry["points"], strict=True):
            cell_dir = cells_dir / cell
            summary = read_summary(cell_dir)
            config = {**plan["cells"][cell], "cell_id": cell}
            try:
                rows.append(cell_row(study, entry["axes"], point, config, summary))
            except (KeyError, TypeError) as error:
                raise UnreadableCellError(
                    f"cell {cell}: {cell_dir / 'summary.json'} lacks {error}; {REBUILD_HINT}"
                ) from error
            if cell in seen:
                continue
            seen.add(cell)
            curve = read_table(cell_dir / "curves.parquet", CURVES_SCHEMA, cell)
            curves.append(with_cell_column(curve, cell, CELL_CURVES_SCHEMA))
            probe_path = cell_dir / "probes.parquet"
            if probe_path.exists():
                probe = read_table(probe_path, PROBE_RECORDS_SCHEMA, cell)
                probes.append(with_cell_column(probe, cell, CELL_PROBES_SCHEMA))
    write_parquet_atomic(out_dir / "cells.parquet", cells_table(rows))
    write_parquet_atomic(out_dir / "curves.parquet", concat(curves, CELL_CURVES_SCHEMA))
    write_parquet_atomic(out_dir / "probes.parquet", concat(probes, CELL_PROBES_SCHEMA))
    return {"cells": len(rows), "unique_cells": len(seen)}


def concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()
