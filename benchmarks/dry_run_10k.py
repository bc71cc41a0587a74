"""Benchmark: parse and dry-run a 10,000-cell study (the Snakefile must never import torch).

Usage: python benchmarks/dry_run_10k.py [--cells-per-axis ...]
Writes a config with a 10 x 10 x 4 x 5 x 5 = 10,000-cell grid into a temporary workflow
directory and times `snakemake -n` and the grid expansion alone.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["studies"] = {
        "big": {
            "grid": {
                "lr": [round(0.01 * i, 3) for i in range(1, 11)],
                "depth": [14, 20, 32, 56, 110, 218, 434, 866, 1202, 1604],
                "freeze": ["all", "norm", "head", "norm+head"],
                "batch_size": [16, 32, 64, 128, 256],
                "seed": [0, 1, 2, 3, 4],
            },
            "set": {"model": "resnet", "dataset": "cifar10", "epochs": 160},
        }
    }
    from normstudy.grid import plan_studies

    start = time.perf_counter()
    plan = plan_studies(config)
    expand = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "config.yaml").write_text(yaml.safe_dump(config))
        snakemake = str(Path(sys.executable).parent / "snakemake")
        command = [snakemake, "-s", str(REPO / "Snakefile"), "-d", workdir, "-n", "--quiet"]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        dry_run = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    print(f"cells: {len(plan.cells)}")
    print(f"grid expansion + validation: {expand:.1f} s")
    print(f"snakemake -n (parse + DAG of {len(plan.cells)} training jobs): {dry_run:.1f} s")


if __name__ == "__main__":
    main()
