"""GPU slots for training jobs: which device each job uses, and how many share one.

Snakemake's ``gpu`` resource limits how many training jobs run at once on a
workstation, but does not say *which* GPU each job should use. Each ``normstudy train``
started with ``--gpu-slots N`` takes the first of its slots it can lock (a lock file per
slot, ``fcntl.flock``, released by the OS when the process ends, even when killed) and
sets ``CUDA_VISIBLE_DEVICES`` to that slot's device before torch initialises CUDA.

Small cells leave a large GPU mostly idle, so ``--cells-per-gpu k`` gives each device k
slots: N GPUs become N·k slots, slot s on device s mod N, so that the first N jobs get
N different devices and the (N+1)-th is the first to share. Each sharing job limits its
allocations to 1/k of the device's memory (:func:`limit_gpu_memory`), so one cell
cannot starve the others; each process's CUDA context (a few hundred MB) comes on top.

Jobs under SLURM get their GPUs from SLURM, which sets ``CUDA_VISIBLE_DEVICES`` itself.
With k > 1 each cell is still its own SLURM job and SLURM itself shares the GPU: the job
asks for 1/k of a GPU's shards (``gres/shard``, :func:`normstudy.cluster.gpu_sharing_request`),
and SLURM places up to k such jobs on one device; here the cell only caps its memory at
1/k. (The cells of a bundle cannot share: SLURM gives each bundled cell's ``srun`` step
the job's devices for itself.) Wherever ``CUDA_VISIBLE_DEVICES`` is set, the slots are on
the devices it lists, slot s on the s mod N-th, with the locks kept per SLURM job.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

_held: list[IO] = []


def lock_directory() -> Path:
    """Where the slot locks live: ``$NORMSTUDY_GPU_LOCKS``, else the temporary directory,
    in a subdirectory per SLURM job inside one (its devices are its own)."""
    base = Path(os.environ.get("NORMSTUDY_GPU_LOCKS", tempfile.gettempdir()))
    job = os.environ.get("SLURM_JOB_ID")
    if job and "CUDA_VISIBLE_DEVICES" in os.environ:
        base = base / f"normstudy-slurm-{job}"
        base.mkdir(mode=0o700, exist_ok=True)
    return base


def slot_devices(devices: list[str], cells_per_gpu: int) -> list[str]:
    """The device of every slot: ``devices`` repeated ``cells_per_gpu`` times, round robin
    (slot s on device s mod len(devices))."""
    if cells_per_gpu < 1:
        raise ValueError(f"cells_per_gpu must be an integer >= 1; got {cells_per_gpu!r}")
    return [devices[slot % len(devices)] for slot in range(len(devices) * cells_per_gpu)]


def visible_devices() -> list[str] | None:
    """The devices ``CUDA_VISIBLE_DEVICES`` lists (None when it is unset)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [device for device in value.split(",") if device.strip()]


def claim_gpu_slot(slots: int, directory: Path | None = None, cells_per_gpu: int = 1) -> int | None:
    """Lock a free slot and point ``CUDA_VISIBLE_DEVICES`` at its device; the slot, or
    None when nothing was changed.

    ``slots`` is the machine's GPU count (``local_gpus``); under SLURM (or whenever
    ``CUDA_VISIBLE_DEVICES`` is set) the visible devices are used instead, and only when
    ``cells_per_gpu`` > 1. Raises RuntimeError when every slot is taken (more jobs than
    GPUs times ``cells_per_gpu``: the profile's ``gpu`` resource should prevent that).
    """
    chosen = visible_devices()
    if chosen is not None:
        if cells_per_gpu <= 1 or not chosen:
            return None
        devices = chosen
    elif slots <= 0:
        return None
    else:
        devices = [str(device) for device in range(slots)]
    directory = directory or lock_directory()
    owners = slot_devices(devices, cells_per_gpu)
    for slot, device in enumerate(owners):
        handle = open(directory / f"normstudy-gpu-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        return slot
    raise RuntimeError(
        f"all {len(owners)} GPU slots are in use ({len(devices)} GPUs x {cells_per_gpu} cells "
        f"per GPU; locks in {directory}); run at most that many training jobs at once "
        f"(profile resource gpu={len(owners)})"
    )


def memory_fraction(cells_per_gpu: int) -> float | None:
    """The share of a device's memory one of ``cells_per_gpu`` sharing cells may take
    (None: the whole device, no limit)."""
    return None if cells_per_gpu <= 1 else 1.0 / cells_per_gpu


def limit_gpu_memory(cells_per_gpu: int) -> float | None:
    """Cap this process's CUDA allocations at its share of the device (no-op without CUDA
    or without sharing); the fraction applied. ``torch.cuda.set_per_process_memory_fraction``
    makes an allocation beyond it fail with an out-of-memory error in this cell alone."""
    fraction = memory_fraction(cells_per_gpu)
    if fraction is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.set_per_process_memory_fraction(fraction)
    return fraction
