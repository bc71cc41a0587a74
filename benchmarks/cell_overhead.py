"""Benchmark: what a training cell pays besides training (goal: a zero-epoch cell <= 3 s).

Usage: python benchmarks/cell_overhead.py [--quick] [--repeats N] [--json FILE]

Builds the workflow's data cache of ``mnist5k`` once, then runs, each in a fresh
interpreter and alternating them ``--repeats`` times (medians are printed):

* ``python -c pass`` (interpreter start),
* ``python -c "import torch"``,
* ``python -c "import normstudy.cli, normstudy.train"`` (everything a train command imports),
* a zero-epoch cell (``epochs: 0``: build, evaluate the initial model, write every
  output) end to end through the CLI, as ``workflow/rules/train.smk`` runs it,
* the same cell through the warm client (``python -m normstudy.warm``, issue #16 item 1)
  whose server was started once before the rounds (its start is reported apart),
* the same cell in one interpreter that times its stages: ``import torch``, the
  normstudy imports, the cache load, building the model, the shape check, the final
  evaluation, writing the outputs, and the rest; then the cell once more in that
  interpreter: what the cell itself costs, everything else being overhead.

Then (``--workflow-cells N``, default 6, 2 with ``--quick``, 0 skips) the real workflow on N
zero-epoch cells run back to back (``snakemake --cores 1``), once with ``warm_worker:
false`` (today's path) and once with ``warm_worker: true`` (the warm server started by its
first cell): wall time and the median per-cell seconds of rule train's jobs (Snakemake's
metadata records of each job's start and end).

It also checks that ``import normstudy`` and the modules the Snakefile imports leave
torch unimported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CELL = {"dataset": "mnist5k", "model": "mlp", "epochs": 0}
REPO = Path(__file__).resolve().parents[1]
SNAKEFILE_IMPORTS = (
    "normstudy",
    "normstudy.grid",
    "normstudy.config",
    "normstudy.catalog",
    "normstudy.comparison_specs",
)
STAGES = {
    "splits_for": "load the data cache",
    "model_for": "build the model",
    "check_forward": "shape check (one forward)",
    "optimizer_for": "build the optimizer (torch.optim imports torch._dynamo)",
    "curves_table": "curves table (pyarrow imports pandas)",
    "summary_for": "final evaluation (train, val, test)",
    "write_parquet_atomic": "write curves/probes Parquet",
    "write_json_atomic": "write config/summary JSON",
}


def run(command: list[str]) -> float:
    """Wall seconds of ``command``; fails loudly if it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds


def breakdown_child(cache: str, outdir: str) -> None:
    """Train the zero-epoch cell in this interpreter, timing each stage; print JSON."""
    start = time.perf_counter()
    import torch  # noqa: F401

    torch_seconds = time.perf_counter() - start
    import normstudy.cli  # noqa: F401
    import normstudy.train as train

    imports_seconds = time.perf_counter() - start - torch_seconds
    seconds = dict.fromkeys(STAGES, 0.0)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - t0

        return wrapper

    # train is a package: each stage is bound in every submodule that imported it.
    modules = [m for n, m in list(sys.modules.items()) if n.startswith("normstudy.train")]
    for name in STAGES:
        holders = [m for m in modules if name in vars(m)]
        if not holders:
            raise SystemExit(f"no normstudy.train module defines or imports {name}")
        wrapped = timed(name, getattr(holders[0], name))
        for module in holders:
            setattr(module, name, wrapped)
    t0 = time.perf_counter()
    train.train_cell(CELL, outdir, data_cache=cache, threads=1)
    cell_seconds = time.perf_counter() - t0
    stages = {"import torch": torch_seconds, "import normstudy": imports_seconds}
    stages.update({STAGES[name]: value for name, value in seconds.items()})
    stages["everything else in train_cell"] = cell_seconds - sum(seconds.values())
    t0 = time.perf_counter()
    train.train_cell(CELL, outdir + "-again", data_cache=cache, threads=1)
    stages["the cell again in the same interpreter"] = time.perf_counter() - t0
    print(json.dumps(stages))


def workflow_seconds(python: str, workdir: Path, cells: int, warm: bool) -> dict:
    """Wall seconds of the workflow on ``cells`` zero-epoch cells back to back, and the
    median seconds of one rule train job (Snakemake's own record of the job)."""
    workdir.mkdir()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        {
            "warm_worker": warm,
            "defaults": CELL,
            "studies": {"overhead": {"grid": {"seed": list(range(cells))}}},
        }
    )
    config["resources"]["threads"] = 1
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = str(Path(python).parent / "snakemake")
    base = [snakemake, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1"]
    run([*base, "--until", "prepare_data"])
    start = time.perf_counter()
    run([*base, "study_overhead"])
    wall = time.perf_counter() - start
    jobs = train_job_seconds(workdir)
    assert len(jobs) == cells, jobs
    return {"wall": wall, "per_cell_job": statistics.median(jobs)}


def train_job_seconds(workdir: Path) -> list[float]:
    """Seconds of each rule train job, from the start and end times Snakemake records in
    ``.snakemake/metadata`` (one record per output file; one per job, by its log, is kept)."""
    jobs = {}
    for path in (workdir / ".snakemake" / "metadata").iterdir():
        record = json.loads(path.read_text())
        if record.get("rule") == "train":
            jobs[tuple(record["log"])] = record["endtime"] - record["starttime"]
    return list(jobs.values())


def imports_torch(python: str) -> bool:
    """Whether ``import normstudy`` and the modules the Snakefile imports pull in torch."""
    code = f"import sys, {', '.join(SNAKEFILE_IMPORTS)}; print('torch' in sys.modules)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat: checks it runs")
    parser.add_argument("--repeats", type=int, default=None, help="alternation rounds")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--workflow-cells", type=int, default=None, help="0 skips")
    parser.add_argument("--breakdown-child", nargs=2, metavar=("CACHE", "OUTDIR"))
    args = parser.parse_args(argv)
    if args.breakdown_child:
        breakdown_child(*args.breakdown_child)
        return {}
    repeats = args.repeats or (1 if args.quick else 5)
    workflow_cells = (
        (2 if args.quick else 6) if args.workflow_cells is None else args.workflow_cells
    )
    python = sys.executable
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as workdir:
        # A private warm server, of this code, that ends soon after the benchmark.
        runtime = Path(workdir) / "runtime"
        runtime.mkdir(mode=0o700)
        os.environ.update({"XDG_RUNTIME_DIR": str(runtime), "NORMSTUDY_WARM_IDLE": "600"})
        cache = str(Path(workdir) / "mnist5k.pt")
        prepare = [python, "-m", "normstudy.cli", "prepare-data", "--json", json.dumps(CELL)]
        run([*prepare, cache])
        server_start = run([python, "-m", "normstudy.warm", "--help"])
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "import torch": [python, "-c", "import torch"],
            "import normstudy.cli, normstudy.train": [
                python,
                "-c",
                "import normstudy.cli, normstudy.train",
            ],
            "zero-epoch cell via the CLI": [
                python,
                "-m",
                "normstudy.cli",
                "train",
                "--json",
                json.dumps(CELL),
                str(Path(workdir) / "cell"),
                "--data-cache",
                cache,
                "--threads",
                "1",
                "--force",
            ],
        }
        warm_cell = commands["zero-epoch cell via the CLI"][3:]
        commands["zero-epoch cell via the warm client"] = [
            python,
            "-m",
            "normstudy.warm",
            *warm_cell,
        ]
        times = {name: [] for name in commands}
        breakdowns = []
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(run(command))
            child = [python, __file__, "--breakdown-child", cache, str(Path(workdir) / "inproc")]
            out = subprocess.run(child, capture_output=True, text=True, check=True)
            breakdowns.append(json.loads(out.stdout.strip().splitlines()[-1]))
        summary = json.loads((Path(workdir) / "cell" / "summary.json").read_text())
        workflow = {}
        if workflow_cells:
            for name, warm in (("today", False), ("warm", True)):
                workflow[name] = workflow_seconds(
                    python, Path(workdir) / f"workflow-{name}", workflow_cells, warm
                )
    report = {
        "load_average": load_start,
        "load_average_end": list(os.getloadavg()),
        "repeats": repeats,
        "seconds": {name: statistics.median(values) for name, values in times.items()},
        "stages": {k: statistics.median(b[k] for b in breakdowns) for k in breakdowns[0]},
        "cell_epochs_run": summary["epochs_run"],
        "snakefile_imports_torch": imports_torch(python),
        "warm_server_start": server_start,
        "workflow_cells": workflow_cells,
        "workflow": workflow,
        "goal_seconds": 3.0,
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def print_report(report: dict) -> None:
    print(
        f"load average {report['load_average'][0]:.2f} at start, "
        f"{report['load_average_end'][0]:.2f} at end; median of {report['repeats']} runs each"
    )
    seconds = report["seconds"]
    torch_seconds = seconds["import torch"]
    for name, value in seconds.items():
        print(f"  {name:40s} {value:6.2f} s  ({value / torch_seconds:4.2f}x import torch)")
    cell = seconds["zero-epoch cell via the CLI"]
    print(f"goal: zero-epoch cell <= {report['goal_seconds']:.0f} s; measured {cell:.2f} s")
    print("stages of the same cell in one interpreter:")
    for name, value in report["stages"].items():
        print(f"  {name:40s} {value:6.3f} s")
    cell_itself = report["stages"]["the cell again in the same interpreter"]
    print(f"the cell itself (again in one interpreter): {cell_itself:.2f} s; overhead:")
    for name in ("zero-epoch cell via the CLI", "zero-epoch cell via the warm client"):
        overhead = seconds[name] - cell_itself
        print(f"  {name:40s} {overhead:6.2f} s  ({overhead / torch_seconds:4.2f}x import torch)")
    print(f"warm server start (first call, cold): {report['warm_server_start']:.2f} s")
    for name, numbers in report["workflow"].items():
        overhead = numbers["per_cell_job"] - cell_itself
        print(
            f"workflow, {report['workflow_cells']} cells, {name}: wall {numbers['wall']:.1f} s, "
            f"rule train job {numbers['per_cell_job']:.2f} s, overhead {overhead:.2f} s "
            f"({overhead / torch_seconds:4.2f}x import torch)"
        )
    verdict = "IMPORTS TORCH" if report["snakefile_imports_torch"] else "no torch"
    print(f"import {', '.join(SNAKEFILE_IMPORTS)}: {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
