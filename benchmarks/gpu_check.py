"""GPU check: what to run on the first machine with CUDA before trusting the GPU paths.

Usage: python benchmarks/gpu_check.py [--steps N] [--peak-fp32 TFLOPS] [--peak-bf16 TFLOPS]
                                      [--json FILE] [--workdir DIR]

On a CUDA machine it checks, one after the other:

1. **Throughput.** A ResNet-20 cell (the study's CIFAR ResNet, batch 128) on random uint8
   images of CIFAR-10's shape (45,000 training examples; CIFAR-10 itself need not be
   there), trained in fp32 and with bf16 autocast (``amp: true``) exactly as
   ``normstudy train`` trains (:func:`normstudy.train.prepare`, then
   :func:`normstudy.train.train_step`): samples/s, and the achieved FLOP/s (the FLOPs of a
   training example counted by :func:`normstudy.flops.flops_per_example`) as a fraction
   of the device's dense fp32 and bf16 peaks (:data:`PEAKS`, or ``--peak-*``).
2. **Resume after SIGTERM, bitwise on the GPU.** The same cell (fewer examples) trained
   without interruption, and again with SIGTERM mid-run (exit status 75, a checkpoint)
   then run once more: curves and final metrics must be equal bit for bit.
3. **Two cells on one GPU through the workflow's GPU slots.** Two ``normstudy train
   --gpu-slots 1 --cells-per-gpu 2`` at once, as the train rule starts them with
   ``resources: {local_gpus: 1, cells_per_gpu: 2}``: both must finish, both on device 0,
   overlapping in time; their combined samples/s is set beside one cell alone.

Without CUDA it says so, lists what it would check, and exits 0. Everything that does
not need a GPU (the peak table, the fractions, the bitwise comparison of two cells, the
report) is unit-tested on CPUs (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

EXIT_CHECKPOINTED = 75
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Peak:
    """A device's dense (no sparsity) peak rates in TFLOP/s; None where it has none."""

    fp32: float | None
    bf16: float | None
    source: str


PEAKS: dict[str, Peak] = {
    "H100 PCIe": Peak(51.2, 756.0, "NVIDIA H100 datasheet (PCIe), dense tensor BF16"),
    "H100": Peak(67.0, 989.4, "NVIDIA H100 datasheet (SXM5), dense tensor BF16"),
    "A100": Peak(19.5, 312.0, "NVIDIA A100 datasheet, FP32 and dense tensor BF16"),
    "A40": Peak(37.4, 149.7, "NVIDIA A40 datasheet, dense tensor BF16"),
    "A10": Peak(31.2, 125.0, "NVIDIA A10 datasheet, dense tensor BF16"),
    "L4": Peak(30.3, 121.0, "NVIDIA L4 datasheet, dense tensor BF16"),
    "RTX A6000": Peak(38.7, 154.8, "NVIDIA RTX A6000 datasheet, dense tensor BF16"),
    "RTX 4090": Peak(82.6, 165.2, "NVIDIA Ada whitepaper (RTX 4090), dense BF16, FP32 acc."),
    "V100": Peak(15.7, None, "NVIDIA V100 datasheet (SXM2); no BF16"),
    "T4": Peak(8.1, None, "NVIDIA T4 datasheet; no BF16"),
}
"""Device name fragment -> peak rates, longest fragment matched first (``H100 PCIe``
before ``H100``, ``A100`` before ``A10``). Vendor datasheet numbers: a measured fraction of them is
what the study can expect per GPU-hour."""


def peak_for(device_name: str, fp32: float | None = None, bf16: float | None = None) -> Peak | None:
    """The peak of ``device_name`` (``torch.cuda.get_device_name``), with ``fp32`` and
    ``bf16`` overriding the table; None when the device is unknown and nothing is given."""
    known = None
    for fragment in sorted(PEAKS, key=len, reverse=True):
        if fragment.lower() in device_name.lower():
            known = PEAKS[fragment]
            break
    if fp32 is None and bf16 is None:
        return known
    return Peak(
        fp32 if fp32 is not None else (known.fp32 if known else None),
        bf16 if bf16 is not None else (known.bf16 if known else None),
        "given on the command line" + (f", else {known.source}" if known else ""),
    )


def fraction_of_peak(samples_per_second: float, flops_per_example: float, peak: float | None):
    """Achieved FLOP/s over the peak (TFLOP/s); None without a peak."""
    if peak is None or peak <= 0:
        return None
    return samples_per_second * flops_per_example / (peak * 1e12)


def cell_differences(first: Path, second: Path) -> list[str]:
    """What differs between two finished cell directories in what training computed: the
    curves (every column but wall times) and the summary's final metrics and status."""
    import pyarrow.parquet as pq

    timing = {"seconds"}
    problems = []
    curves = [pq.read_table(path / "curves.parquet").to_pandas() for path in (first, second)]
    if list(curves[0].columns) != list(curves[1].columns) or len(curves[0]) != len(curves[1]):
        problems.append("curves have different columns or rows")
    else:
        # Bytes, not values: NaN equals NaN, and -0.0 differs from 0.0.
        changed = [
            column
            for column in curves[0].columns
            if column not in timing
            and curves[0][column].to_numpy().tobytes() != curves[1][column].to_numpy().tobytes()
        ]
        if changed:
            problems.append(f"curves differ in {', '.join(changed)}")
    summaries = [json.loads((path / "summary.json").read_text()) for path in (first, second)]
    for key in ("final", "status", "steps_run", "epochs_run"):
        if summaries[0].get(key) != summaries[1].get(key):
            problems.append(
                f"summary {key} differs: {summaries[0].get(key)!r} vs {summaries[1].get(key)!r}"
            )
    return problems


def report_text(results: dict) -> str:
    """The check's report, one line per measurement."""
    lines = [f"device: {results['device']}"]
    peak = results.get("peak")
    lines.append(
        "peak: unknown device, give --peak-fp32/--peak-bf16 for fractions"
        if peak is None
        else f"peak: fp32 {peak['fp32']} TFLOP/s, bf16 {peak['bf16']} TFLOP/s ({peak['source']})"
    )
    for run in results.get("throughput", []):
        fraction = run["fraction_of_peak"]
        share = "n/a" if fraction is None else f"{100 * fraction:.1f}% of {run['precision']} peak"
        lines.append(
            f"ResNet-20 {run['precision']}: {run['samples_per_second']:.0f} samples/s, "
            f"{run['tflops']:.2f} TFLOP/s achieved ({share})"
        )
    if "resume" in results:
        resume = results["resume"]
        verdict = "bitwise equal" if not resume["differences"] else "; ".join(resume["differences"])
        if not resume.get("checkpointed", True):
            verdict = "not tested: the run ended before the signal (raise --steps)"
        lines.append(f"resume after SIGTERM: {verdict}")
    if "sharing" in results:
        sharing = results["sharing"]
        lines.append(
            f"two cells on one GPU: devices {sharing['devices']}, overlapped "
            f"{sharing['overlap_seconds']:.1f} s, {sharing['combined_samples_per_second']:.0f} "
            f"samples/s together vs {sharing['alone_samples_per_second']:.0f} alone"
        )
    return "\n".join(lines)


def absent_cuda_text() -> str:
    return (
        "CUDA is not available here: nothing was measured. On a CUDA machine this command "
        "trains a ResNet-20 cell on CIFAR-shaped data in fp32 and bf16 (samples/s, fraction "
        "of the device's peak), checks that resume after SIGTERM is bitwise equal on the "
        "GPU, and runs two cells on one GPU through the workflow's GPU slots."
    )


# ----------------------------------------------------------------- on a CUDA machine


def resnet_config(amp: bool, epochs: int = 1, train_subset: int | None = None) -> dict:
    from normstudy.config import resolve_cell_config

    return resolve_cell_config(
        {
            "dataset": "cifar10",
            "model": "resnet",
            "depth": 20,
            "norm": "batch",
            "batch_size": 128,
            "epochs": epochs,
            "amp": amp,
            "train_subset": train_subset,
            "probes": [],
        }
    )


def cifar_shaped_cache(workdir: Path) -> tuple[Path, object]:
    """A data cache of random uint8 CIFAR-shaped images under ``workdir``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import cifar_shaped_splits

    from normstudy.datacache import save_cache

    splits = cifar_shaped_splits(45000)
    cache = workdir / "cifar_shaped.pt"
    save_cache(splits, resnet_config(False), cache)
    return cache, splits


def throughput(splits, amp: bool, steps: int, peak: Peak | None) -> dict:
    import torch

    from normstudy.flops import flops_per_example
    from normstudy.train import prepare, train_step
    from normstudy.train.batches import epoch_permutation

    config = resnet_config(amp)
    cell = prepare(config, data_dir=None, download=False, threads=None, splits=splits)
    order = epoch_permutation(cell)
    batch = config["batch_size"]

    def run(count: int, offset: int) -> None:
        for step in range(count):
            start = ((offset + step) * batch) % (len(order) - batch)
            train_step(cell, order[start : start + batch])
        torch.cuda.synchronize()

    run(5, 0)
    began = time.perf_counter()
    run(steps, 5)
    rate = steps * batch / (time.perf_counter() - began)
    train_flops, _ = flops_per_example(config, splits)
    precision = "bf16" if amp else "fp32"
    rated = None if peak is None else (peak.bf16 if amp else peak.fp32)
    return {
        "precision": precision,
        "samples_per_second": rate,
        "tflops": rate * train_flops / 1e12,
        "fraction_of_peak": fraction_of_peak(rate, train_flops, rated),
    }


def train_command(config_path: Path, outdir: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "normstudy.cli", "train", str(config_path), str(outdir),
        "--data-cache", str(cache), "--checkpoint", str(outdir) + ".pt", *extra,
    ]  # fmt: skip


def resume_check(workdir: Path, cache: Path) -> dict:
    """Train uninterrupted; train again with SIGTERM after the first epoch's checkpoint
    can exist, then resume; compare."""
    import yaml

    config = resnet_config(False, epochs=3, train_subset=5000)
    path = workdir / "resume.yaml"
    path.write_text(yaml.safe_dump(config))
    whole, cut = workdir / "whole", workdir / "cut"
    subprocess.run(train_command(path, whole, cache), check=True)
    job = subprocess.Popen(train_command(path, cut, cache))
    time.sleep(max(2.0, json.loads((whole / "summary.json").read_text())["train_seconds"] / 2))
    job.send_signal(signal.SIGTERM)
    interrupted = job.wait()
    subprocess.run(train_command(path, cut, cache), check=True)
    return {
        "interrupted_exit_status": interrupted,
        "checkpointed": interrupted == EXIT_CHECKPOINTED,
        "differences": cell_differences(whole, cut),
    }


def run_together(commands: list[list[str]], env: dict) -> list[tuple[float, float]]:
    """Start ``commands`` at once; (start, end) wall time of each, in seconds. A command
    that fails stops the check: its cell's train.log says why."""
    jobs = [(subprocess.Popen(command, env=env), time.perf_counter()) for command in commands]
    spans: list[tuple[float, float] | None] = [None] * len(jobs)
    while any(span is None for span in spans):
        for index, (job, started) in enumerate(jobs):
            if spans[index] is None and job.poll() is not None:
                if job.returncode != 0:
                    raise RuntimeError(f"{commands[index][-1]} failed (status {job.returncode})")
                spans[index] = (started, time.perf_counter())
        time.sleep(0.05)
    return spans  # type: ignore[return-value]


def samples(cell: Path) -> float:
    summary = json.loads((cell / "summary.json").read_text())
    return summary["samples_per_second"] * summary["train_seconds"]


def sharing_check(workdir: Path, cache: Path) -> dict:
    """Two cells at once on one GPU through the slots, and one alone for comparison."""
    import yaml

    config = resnet_config(False, epochs=1, train_subset=20000)
    path = workdir / "share.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["NORMSTUDY_GPU_LOCKS"] = str(workdir)
    slots = ("--gpu-slots", "1", "--cells-per-gpu", "2")
    alone = workdir / "alone"
    ((began, ended),) = run_together([train_command(path, alone, cache, *slots)], env)
    pair = [workdir / "shared_a", workdir / "shared_b"]
    spans = run_together([train_command(path, cell, cache, *slots) for cell in pair], env)
    runs = [json.loads((cell / "summary.json").read_text())["provenance"] for cell in pair]
    together = max(end for _, end in spans) - min(start for start, _ in spans)
    return {
        "devices": [run["cuda_visible_devices"] for run in runs],
        "overlap_seconds": max(0.0, min(e for _, e in spans) - max(s for s, _ in spans)),
        "combined_samples_per_second": sum(samples(cell) for cell in pair) / together,
        "alone_samples_per_second": samples(alone) / (ended - began),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per precision")
    parser.add_argument("--peak-fp32", type=float, help="the device's fp32 peak (TFLOP/s)")
    parser.add_argument("--peak-bf16", type=float, help="the device's dense bf16 peak")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temp)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(absent_cuda_text())
        return 0
    import tempfile

    device = torch.cuda.get_device_name(0)
    peak = peak_for(device, args.peak_fp32, args.peak_bf16)
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        workdir = Path(scratch)
        cache, splits = cifar_shaped_cache(workdir)
        results = {
            "device": device,
            "peak": None if peak is None else asdict(peak),
            "throughput": [throughput(splits, amp, args.steps, peak) for amp in (False, True)],
            "resume": resume_check(workdir, cache),
            "sharing": sharing_check(workdir, cache),
        }
    print(report_text(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    resume = results["resume"]
    return 0 if resume["checkpointed"] and not resume["differences"] else 1


if __name__ == "__main__":
    sys.exit(main())
