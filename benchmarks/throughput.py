"""Benchmark: training throughput of normstudy's data path against a plain PyTorch loop.

Usage: python benchmarks/throughput.py [--quick] [--no-compile] [--rounds N] [--json FILE]

For each workload (an MLP on ``mnist5k``; ResNet-20 on random uint8 images of CIFAR-10's
shape, 45,000 train examples, since CIFAR-10 itself is not on this machine) it trains
the same model from the same initial weights with the same batch size, optimizer and
number of steps in two ways, alternating them round by round in one process:

* **reference**: the plain way. A torchvision ``VisionDataset`` whose ``__getitem__`` is
  torchvision's CIFAR10/MNIST one (``PIL.Image.fromarray`` then per-sample transforms:
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip`` for CIFAR-shaped data, then
  ``ToTensor`` and ``Normalize``), a shuffling ``DataLoader`` and the usual loop
  (``zero_grad``, forward, cross-entropy, ``backward``, ``step``, ``loss.item()``).
  Run with ``num_workers=0`` and, outside ``--quick``, ``num_workers=2``; the faster
  of the two is the reference the ratio is taken against.
* **normstudy**: :func:`normstudy.train.prepare` on the workflow's data cache, then
  :func:`normstudy.train.train_step` on slices of :func:`epoch_permutation`, exactly as
  :func:`normstudy.train.run_epochs` does (dataset resident as one uint8 tensor,
  batch-wise augmentation, divergence check every step). Variants with
  ``channels_last`` and (outside ``--quick``) ``compile`` are measured beside it.

It prints samples/s per variant (median over rounds), each variant's ratio to the
reference (median of the per-round ratios: the two ran back to back under the same
load), and model FLOP/s (matmul and conv FLOPs of one training step counted by
``torch.utils.flop_counter``) as a fraction of the machine's fp32 matmul FLOP/s measured
in the same run. The share of the reference's time spent waiting for its ``DataLoader``
bounds what any data path can gain over it: at most ``1 / (1 - share)``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms
from torchvision.datasets import VisionDataset

from normstudy.config import resolve_cell_config
from normstudy.data import DatasetSplits, load_dataset
from normstudy.data.base import splits_from_pools
from normstudy.datacache import save_cache
from normstudy.train import inputs_for_model, prepare, train_step
from normstudy.train.batches import epoch_permutation
from normstudy.train.runtime import available_threads


@dataclass
class Workload:
    name: str
    config: dict
    steps: int
    goal: float
    num_train: int = 0
    warmup_steps: int = 2


class ArrayImages(VisionDataset):
    """uint8 images held as an (N, H, W[, C]) array, read the way torchvision's CIFAR10 and
    MNIST datasets read theirs: one PIL image per sample, then the per-sample transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        super().__init__(root=None, transform=transform)
        self.data = images
        self.targets = labels.tolist()

    def __getitem__(self, index: int):
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index]

    def __len__(self) -> int:
        return len(self.data)


def reference_dataset(splits: DatasetSplits) -> ArrayImages:
    """The train split as a plain torchvision dataset with per-sample transforms."""
    x = splits.train_x.numpy()
    per_sample = [transforms.ToTensor(), transforms.Normalize(splits.mean, splits.std)]
    if splits.augment:
        size = x.shape[-1]
        per_sample = [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            *per_sample,
        ]
    images = x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    return ArrayImages(
        np.ascontiguousarray(images), splits.train_y.numpy(), transforms.Compose(per_sample)
    )


class ReferenceLoop:
    """The usual training loop over a ``DataLoader``, resumable round by round."""

    def __init__(self, model, config, dataset, batch_size, workers) -> None:
        self.model = model.train()
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config["lr"],
            momentum=config["momentum"],
            weight_decay=config["weight_decay"],
        )
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
        self.batches = iter(self.loader)
        self.running_loss = 0.0
        self.data_seconds = 0.0
        self.total_seconds = 0.0

    def next_batch(self):
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)

    def run(self, steps: int) -> int:
        samples = 0
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            x, y = self.next_batch()
            self.data_seconds += time.perf_counter() - t0
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            self.running_loss += loss.item()
            samples += len(y)
        self.total_seconds += time.perf_counter() - start
        return samples

    def data_fraction(self) -> float:
        """Share of the loop's time spent waiting for the ``DataLoader``."""
        return self.data_seconds / self.total_seconds


class NormstudyLoop:
    """:func:`normstudy.train.train_step` over the epoch permutation, as ``run_epochs`` does."""

    def __init__(self, cell) -> None:
        self.cell = cell
        self.cell.model.train()
        self.permutation = epoch_permutation(cell)
        self.batch_in_epoch = 0

    def run(self, steps: int) -> int:
        cell, plan = self.cell, self.cell.plan
        samples = 0
        for _ in range(steps):
            if self.batch_in_epoch == plan.steps_per_epoch:
                self.permutation = epoch_permutation(cell)
                self.batch_in_epoch = 0
            start = self.batch_in_epoch * plan.batch_size
            reason = train_step(cell, self.permutation[start : start + plan.batch_size])
            if reason is not None:
                raise RuntimeError(f"benchmark run diverged: {reason}")
            self.batch_in_epoch += 1
            samples += plan.batch_size
        return samples


def cifar_shaped_splits(num_train: int, seed: int = 0) -> DatasetSplits:
    """Random uint8 images of CIFAR-10's shape with the CIFAR-10 augmentation flag."""
    rng = np.random.default_rng(seed)
    pool = num_train + num_train // 9
    images = torch.from_numpy(rng.integers(0, 256, (pool, 3, 32, 32), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 10, pool)).long()
    test = (images[:100].clone(), labels[:100].clone())
    return splits_from_pools(
        "cifar10",
        (images, labels),
        test,
        val_size=pool - num_train,
        split_seed=0,
        num_classes=10,
        augment=True,
    )


def matmul_flops_per_second(size: int, repeats: int) -> float:
    """fp32 FLOP/s of ``size``x``size`` matrix products on the current threads (best of repeats)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_step_flops(cell) -> int:
    """Matmul/conv FLOPs of one forward + backward pass on one training batch."""
    model = copy.deepcopy(cell.model).train()
    indices = torch.arange(cell.plan.batch_size)
    x = inputs_for_model(cell.train_x[indices], cell.splits)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), cell.train_y[indices]).backward()
    return counter.get_total_flops()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "threads": available_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def workload_splits(config: dict, num_train: int) -> DatasetSplits:
    if config["dataset"] == "cifar10":
        return cifar_shaped_splits(num_train)
    return load_dataset(config["dataset"], val_size=config["val_size"], split_seed=0)


def measure(workload: Workload, rounds: int, variants: list[str], workers: list[int], cache_dir):
    """Samples/s of every variant, round by round, alternating them within each round."""
    config = resolve_cell_config(workload.config)
    splits = workload_splits(config, workload.num_train)
    cache = Path(cache_dir) / f"{workload.name}.pt"
    save_cache(splits, config, cache)
    loops = {}
    base = None
    for variant in variants:
        overrides = {} if variant == "normstudy" else {variant.split("+")[1]: True}
        cell = prepare(
            resolve_cell_config({**workload.config, **overrides}),
            data_dir=None,
            download=False,
            threads=None,
            data_cache=cache,
        )
        base = base or cell
        loops[variant] = NormstudyLoop(cell)
    dataset = reference_dataset(base.splits)
    for count in workers:
        model = copy.deepcopy(base.model)
        loops[f"reference workers={count}"] = ReferenceLoop(
            model, config, dataset, base.plan.batch_size, count
        )
    warmup = {}
    for name, loop in loops.items():
        start = time.perf_counter()
        loop.run(workload.warmup_steps)
        warmup[name] = time.perf_counter() - start
    rates = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            start = time.perf_counter()
            samples = loop.run(workload.steps)
            rates[name].append(samples / (time.perf_counter() - start))
    references = [name for name in rates if name.startswith("reference")]
    best_reference = max(references, key=lambda name: statistics.median(rates[name]))
    flops = training_step_flops(base)
    return {
        "workload": workload.name,
        "batch_size": base.plan.batch_size,
        "steps_per_round": workload.steps,
        "rounds": rounds,
        "num_train": len(base.train_y),
        "goal": workload.goal,
        "samples_per_second": {name: statistics.median(r) for name, r in rates.items()},
        "warmup_seconds": warmup,
        "reference": best_reference,
        "ratio": {
            name: statistics.median(
                a / b for a, b in zip(rates[name], rates[best_reference], strict=True)
            )
            for name in variants
        },
        "flops_per_sample": flops / base.plan.batch_size,
        "reference_data_fraction": {
            name: loop.data_fraction() for name, loop in loops.items() if name in references
        },
    }


def workloads(quick: bool) -> list[Workload]:
    """The measured workloads; ``quick`` shrinks steps, data and (ResNet) the batch to 32."""
    mlp = {"dataset": "mnist5k", "model": "mlp", "batch_size": 128}
    resnet = {"dataset": "cifar10", "model": "resnet", "depth": 20, "batch_size": 128}
    if quick:
        return [
            Workload("mlp-mnist5k", mlp, steps=3, goal=3.0, warmup_steps=1),
            Workload(
                "resnet20-cifar-shape",
                {**resnet, "batch_size": 32},
                steps=1,
                goal=1.3,
                num_train=256,
                warmup_steps=1,
            ),
        ]
    return [
        Workload("mlp-mnist5k", mlp, steps=60, goal=3.0),
        Workload("resnet20-cifar-shape", resnet, steps=8, goal=1.3, num_train=45_000),
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: checks it runs")
    parser.add_argument("--rounds", type=int, default=None, help="alternation rounds")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave out the torch.compile variant"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    variants = ["normstudy", "normstudy+channels_last"]
    if not (args.quick or args.no_compile):
        variants.append("normstudy+compile")
    workers = [0] if args.quick else [0, 2]
    info = machine_info()
    results = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for workload in workloads(args.quick):
            results.append(measure(workload, rounds, variants, workers, cache_dir))
    matmul = matmul_flops_per_second(512 if args.quick else 2048, 3 if args.quick else 10)
    info["load_average_end"] = list(os.getloadavg())
    report = {"machine": info, "matmul_flops_per_second": matmul, "workloads": results}
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def print_report(report: dict) -> None:
    info = report["machine"]
    print(
        f"machine: {info['cpu']}, {info['threads']} threads, GPU {info['gpu']}, torch "
        f"{info['torch']}; load average {info['load_average'][0]:.2f} at start, "
        f"{info['load_average_end'][0]:.2f} at end"
    )
    matmul = report["matmul_flops_per_second"]
    print(f"fp32 matmul: {matmul / 1e9:.1f} GFLOP/s")
    for result in report["workloads"]:
        print(
            f"\n{result['workload']}: batch {result['batch_size']}, {result['num_train']} train "
            f"examples, {result['rounds']} rounds x {result['steps_per_round']} steps; "
            f"goal >= {result['goal']}x {result['reference']}"
        )
        for name, share in result["reference_data_fraction"].items():
            print(f"  {name} spends {share:.1%} of its time waiting for the DataLoader")
        for name, rate in result["samples_per_second"].items():
            ratio = result["ratio"].get(name)
            model_flops = rate * result["flops_per_sample"]
            print(
                f"  {name:28s} {rate:9.0f} samples/s"
                + (f"  {ratio:5.2f}x reference" if ratio is not None else " " * 20)
                + f"  {model_flops / matmul:6.1%} of matmul FLOP/s"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
