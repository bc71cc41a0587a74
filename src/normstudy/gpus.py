"""One GPU per local training job: pick a free device slot with a file lock.

Snakemake's ``gpu`` resource limits how many training jobs run at once on a
workstation, but does not say *which* GPU each job should use. Each ``normstudy train``
started with ``--gpu-slots N`` takes the first of N lock files it can lock
(``fcntl.flock``, released by the OS when the process ends, even when killed) and sets
``CUDA_VISIBLE_DEVICES`` to that slot before torch initialises CUDA. Jobs under SLURM
get their GPUs from SLURM, which sets ``CUDA_VISIBLE_DEVICES`` itself; then nothing is
changed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

_held: list[IO] = []


def lock_directory() -> Path:
    return Path(os.environ.get("NORMSTUDY_GPU_LOCKS", tempfile.gettempdir()))


def claim_gpu_slot(slots: int, directory: Path | None = None) -> int | None:
    """Lock and return a free slot in ``range(slots)``; None if CUDA_VISIBLE_DEVICES is set.

    Raises RuntimeError when every slot is taken (more jobs than GPUs: the profile's
    ``gpu`` resource should prevent that).
    """
    if slots <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    directory = directory or lock_directory()
    for slot in range(slots):
        handle = open(directory / f"normstudy-gpu-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
        return slot
    raise RuntimeError(
        f"all {slots} GPU slots are in use (locks in {directory}); run at most as many "
        f"training jobs as there are GPUs (profile resource gpu={slots})"
    )
