"""Benchmark: building the study's tables from many finished cells.

Usage:
    python benchmarks/aggregate.py [--cells 2500 10000] [--epochs 20] [--probe-records 200]
    python benchmarks/aggregate.py --quick       # 100 and 400 cells (CI smoke run)

For every size it writes that many synthetic cell directories into a temporary directory,
in the formats a training job writes (``config.json``, ``summary.json``, ``curves.parquet``
with one row per epoch, ``probes.parquet`` with ``--probe-records`` records, all built
with ``normstudy.schemas``), plus the workflow's ``plan.json``, then runs exactly what
the ``tables`` rule runs (``python -m normstudy.cli aggregate``) in a subprocess and
prints its wall and CPU seconds, its max RSS and the in-memory (Arrow) size of the tables
it wrote. Between two sizes, the growth of RSS is compared with the growth of the tables:
aggregation needs memory for the tables it builds, and should need little more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from process_usage import measured_run  # noqa: E402

from normstudy.catalog import PARAMETER_ROLES  # noqa: E402
from normstudy.grid import plan_document, plan_studies  # noqa: E402
from normstudy.schemas import curves_table, probe_records_table  # noqa: E402

QUICK_CELLS = (100, 400)
FULL_CELLS = (2500, 10000)
PROBE_KEYS = (
    "gamma_mean",
    "gamma_abs_mean",
    "gamma_std",
    "beta_mean",
    "beta_std",
    "frac_abs_gamma_below/0.01",
    "frac_abs_gamma_below/0.05",
    "frac_abs_gamma_below/0.1",
    "grad_abs_mean/norm_gamma",
    "grad_abs_mean/norm_beta",
)


@dataclass
class Aggregation:
    cells: int
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    table_mb: float
    table_rows: dict[str, int]


def study_config(cells: int) -> dict:
    """The repository's config with one study of ``cells`` cells (lr x seed)."""
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    lrs = [round(0.01 * i, 2) for i in range(1, 11)]
    if cells % len(lrs):
        raise SystemExit(f"--cells must be multiples of {len(lrs)}; got {cells}")
    config["studies"] = {
        "scale": {
            "grid": {"lr": lrs, "seed": list(range(cells // len(lrs)))},
            "set": {"dataset": "digits", "model": "resnet", "depth": 20},
        }
    }
    return config


def summary(rng: random.Random, epochs: int) -> dict:
    """A ``summary.json`` with every key a training job writes (``train.summary_for``)."""
    accuracy = {split: rng.uniform(0.5, 1.0) for split in ("train", "val", "test")}
    parameters = {role: rng.randrange(0, 100_000) for role in PARAMETER_ROLES}
    return {
        "status": "ok",
        "diverged_step": None,
        "diverged_epoch": None,
        "diverged_reason": None,
        "final": {
            **{f"{split}_acc": value for split, value in accuracy.items()},
            **{f"{split}_loss": rng.uniform(0.0, 2.0) for split in accuracy},
        },
        "generalization_gap": accuracy["train"] - accuracy["test"],
        "best_val_acc": accuracy["val"],
        "best_val_epoch": epochs - 1,
        "epochs_run": epochs,
        "epochs_planned": epochs,
        "steps_run": epochs * 10,
        "steps_planned": epochs * 10,
        "batch_size": 128,
        "num_train": 1294,
        "num_val": 144,
        "num_test": 359,
        "num_classes": 10,
        "train_seconds": rng.uniform(1, 100),
        "eval_seconds": rng.uniform(0.1, 10),
        "samples_per_second": rng.uniform(1e3, 1e5),
        "resumed": 0,
        "probe_seconds": {"norm_params": rng.uniform(0, 1)},
        "probe_errors": [],
        "parameters": parameters,
        "trainable_parameters": parameters,
        "device": "cpu",
        "threads": 1,
        "versions": {"normstudy": "0.1.0", "torch": "2.14.1", "python": "3.11.7"},
        "seed": 0,
        "provenance": {
            "git_commit": "de8d600" + "0" * 33,
            "git_dirty": False,
            "host": "node001",
            "device": "cpu",
            "gpu_name": None,
            "cuda_version": None,
            "cudnn_version": None,
            "slurm_job_id": "4242",
            "slurm_array_job_id": None,
            "slurm_array_task_id": None,
            "cuda_visible_devices": None,
            "earlier_runs": [],
        },
    }


def curve_rows(rng: random.Random, epochs: int) -> list[dict]:
    return [
        {
            "epoch": epoch,
            "step": 10 * (epoch + 1),
            "lr": 0.1,
            "train_loss": rng.uniform(0, 2),
            "train_acc": rng.uniform(0, 1),
            "val_loss": rng.uniform(0, 2),
            "val_acc": rng.uniform(0, 1),
            "test_loss": rng.uniform(0, 2),
            "test_acc": rng.uniform(0, 1),
            "seconds": rng.uniform(0.1, 5),
        }
        for epoch in range(epochs)
    ]


def probe_rows(rng: random.Random, epochs: int, records: int) -> list[dict]:
    """``records`` norm_params-style records: keys x layers at evenly spaced epochs."""
    rows = []
    while len(rows) < records:
        index = len(rows)
        key = PROBE_KEYS[index % len(PROBE_KEYS)]
        layer = (index // len(PROBE_KEYS)) % 4
        epoch = min(epochs, 5 * (index // (4 * len(PROBE_KEYS))))
        rows.append(
            {
                "epoch": epoch,
                "step": 10 * epoch,
                "probe": "norm_params",
                "layer": f"blocks.{layer}.norm",
                "layer_index": layer,
                "key": key,
                "value": rng.uniform(-1, 1),
            }
        )
    return rows


def write_cells(root: Path, cells: int, epochs: int, records: int) -> tuple[Path, Path]:
    """The plan and the cell directories of a finished ``cells``-cell study under ``root``."""
    plan = plan_studies(study_config(cells))
    cells_dir = root / "cells"
    rng = random.Random(0)
    for cell, config in plan.cells.items():
        cell_dir = cells_dir / cell
        cell_dir.mkdir(parents=True)
        (cell_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (cell_dir / "summary.json").write_text(json.dumps(summary(rng, epochs), indent=2))
        pq.write_table(curves_table(curve_rows(rng, epochs)), cell_dir / "curves.parquet")
        probes = probe_records_table(probe_rows(rng, epochs, records))
        pq.write_table(probes, cell_dir / "probes.parquet")
    plan_path = root / "plan.json"
    plan_path.write_text(json.dumps(plan_document(plan), sort_keys=True))
    return plan_path, cells_dir


def run_aggregation(plan: Path, cells_dir: Path, out_dir: Path, cells: int) -> Aggregation:
    """What the ``tables`` rule runs, timed in a subprocess (wall, CPU, max RSS)."""
    command = [sys.executable, "-m", "normstudy.cli", "aggregate", str(plan), str(cells_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    usage = measured_run([*command, str(out_dir)], env=env)
    tables = {
        name: pq.read_table(out_dir / f"{name}.parquet") for name in ("cells", "curves", "probes")
    }
    if tables["cells"].num_rows != cells:
        raise RuntimeError(f"cells.parquet has {tables['cells'].num_rows} rows, not {cells}")
    return Aggregation(
        cells=cells,
        seconds=usage.seconds,
        cpu_seconds=usage.cpu_seconds,
        max_rss_mb=usage.max_rss_mb,
        table_mb=sum(table.nbytes for table in tables.values()) / 2**20,
        table_rows={name: table.num_rows for name, table in tables.items()},
    )


def main(argv: list[str] | None = None) -> list[Aggregation]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=list(FULL_CELLS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--probe-records", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="100 and 400 cells (CI)")
    args = parser.parse_args(argv)
    sizes = list(QUICK_CELLS) if args.quick else args.cells
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(
        f"{'cells':>6} | {'generate s':>10} | {'aggregate s':>11} {'cpu s':>6} "
        f"{'max RSS MB':>10} | {'tables MB':>9} | rows (cells, curves, probes)",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="aggregate-") as tmp:
        for cells in sizes:
            root = Path(tmp) / str(cells)
            start = time.perf_counter()
            plan, cells_dir = write_cells(root, cells, args.epochs, args.probe_records)
            generate = time.perf_counter() - start
            result = run_aggregation(plan, cells_dir, root / "tables", cells)
            rows = ", ".join(str(n) for n in result.table_rows.values())
            print(
                f"{cells:>6} | {generate:>10.1f} | {result.seconds:>11.1f} "
                f"{result.cpu_seconds:>6.1f} {result.max_rss_mb:>10.0f} | "
                f"{result.table_mb:>9.1f} | {rows}",
                flush=True,
            )
            results.append(result)
    for small, large in zip(results, results[1:], strict=False):
        print(
            f"{small.cells} -> {large.cells} cells: RSS grows "
            f"{large.max_rss_mb - small.max_rss_mb:.0f} MB, the tables "
            f"{large.table_mb - small.table_mb:.0f} MB (in memory)"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return results


if __name__ == "__main__":
    main()
