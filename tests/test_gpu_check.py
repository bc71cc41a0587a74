"""The GPU check's CPU-side logic: peaks, fractions, the bitwise comparison of two cells,
the report, and what it does without CUDA (``benchmarks/gpu_check.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from normstudy.train import train_cell

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(SPEC)
sys.modules["gpu_check"] = gpu_check  # its dataclasses resolve annotations through it
SPEC.loader.exec_module(gpu_check)

TINY = {"dataset": "digits", "model": "mlp", "depth": 1, "width": 16, "epochs": 1, "probes": []}


@pytest.mark.parametrize(
    ("name", "fp32", "bf16"),
    [
        ("NVIDIA A100-SXM4-80GB", 19.5, 312.0),
        ("NVIDIA A10", 31.2, 125.0),
        ("NVIDIA H100 PCIe", 51.2, 756.0),
        ("NVIDIA H100 80GB HBM3", 67.0, 989.4),
        ("Tesla V100-SXM2-16GB", 15.7, None),
    ],
)
def test_device_names_find_their_datasheet_peaks(name, fp32, bf16):
    peak = gpu_check.peak_for(name)
    assert (peak.fp32, peak.bf16) == (fp32, bf16)


def test_unknown_devices_have_no_peak_unless_given():
    assert gpu_check.peak_for("Mystery GPU 9000") is None
    given = gpu_check.peak_for("Mystery GPU 9000", bf16=100.0)
    assert (given.fp32, given.bf16) == (None, 100.0) and "command line" in given.source
    mixed = gpu_check.peak_for("NVIDIA A100-PCIE-40GB", fp32=20.0)
    assert (mixed.fp32, mixed.bf16) == (20.0, 312.0)


def test_fraction_of_peak_is_achieved_flops_over_the_peak():
    # 1,000 examples/s x 1 GFLOP = 1 TFLOP/s, a tenth of a 10 TFLOP/s device.
    assert gpu_check.fraction_of_peak(1000.0, 1e9, 10.0) == pytest.approx(0.1)
    assert gpu_check.fraction_of_peak(1000.0, 1e9, None) is None


def test_cell_differences_find_nothing_between_equal_runs_and_report_a_change(tmp_path):
    train_cell(TINY, tmp_path / "a", threads=1)
    train_cell(TINY, tmp_path / "b", threads=1)
    train_cell({**TINY, "seed": 1}, tmp_path / "c", threads=1)
    assert gpu_check.cell_differences(tmp_path / "a", tmp_path / "b") == []
    differences = gpu_check.cell_differences(tmp_path / "a", tmp_path / "c")
    assert any(d.startswith("curves differ in ") for d in differences)
    assert any("final" in d for d in differences)


def test_the_report_names_every_check_and_an_unknown_peak():
    results = {
        "device": "Mystery GPU",
        "peak": None,
        "throughput": [
            {
                "precision": "fp32",
                "samples_per_second": 5000.0,
                "tflops": 0.2,
                "fraction_of_peak": None,
            },
        ],  # fmt: skip
        "resume": {"differences": []},
        "sharing": {
            "devices": ["0", "0"],
            "overlap_seconds": 12.0,
            "combined_samples_per_second": 9000.0,
            "alone_samples_per_second": 5000.0,
        },
    }
    text = gpu_check.report_text(results)
    assert "peak: unknown device" in text and "5000 samples/s" in text
    assert "resume after SIGTERM: bitwise equal" in text
    untested = gpu_check.report_text(
        {**results, "resume": {"differences": [], "checkpointed": False}}
    )
    assert "resume after SIGTERM: not tested" in untested
    assert "devices ['0', '0'], overlapped 12.0 s, 9000 samples/s together vs 5000 alone" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_exits_0():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CUDA is not available here: nothing was measured")
