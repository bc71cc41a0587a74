"""The training-throughput and per-cell-overhead benchmarks run and report numbers.

Smoke tests of their ``--quick`` modes: no timing thresholds (BENCHMARKS.md holds the
figures), only that every figure is produced and is a positive finite number.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, tmp_path: Path) -> dict:
    output = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--quick", "--json", output],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(output.read_text())


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_throughput_benchmark_reports_rates_ratios_and_flops(tmp_path):
    report = run_benchmark("throughput", tmp_path)
    assert positive(report["matmul_flops_per_second"])
    assert [w["workload"] for w in report["workloads"]] == ["mlp-mnist5k", "resnet20-cifar-shape"]
    for workload in report["workloads"]:
        rates = workload["samples_per_second"]
        assert set(rates) == {"normstudy", "normstudy+channels_last", "reference workers=0"}
        assert all(positive(rate) for rate in rates.values())
        assert set(workload["ratio"]) == {"normstudy", "normstudy+channels_last"}
        assert all(positive(ratio) for ratio in workload["ratio"].values())
        assert workload["flops_per_sample"] > 0
        assert 0 < workload["reference_data_fraction"]["reference workers=0"] < 1


def test_cell_overhead_benchmark_reports_every_stage(tmp_path):
    report = run_benchmark("cell_overhead", tmp_path)
    assert set(report["seconds"]) == {
        "python -c pass",
        "import torch",
        "import normstudy.cli, normstudy.train",
        "zero-epoch cell via the CLI",
        "zero-epoch cell via the warm client",
    }
    assert all(positive(value) for value in report["seconds"].values())
    assert "load the data cache" in report["stages"] and len(report["stages"]) == 12
    assert set(report["workflow"]) == {"today", "warm"}
    assert all(positive(v) for run in report["workflow"].values() for v in run.values())
    assert all(positive(value) for value in report["stages"].values())
    assert report["cell_epochs_run"] == 0
    assert report["snakefile_imports_torch"] is False
