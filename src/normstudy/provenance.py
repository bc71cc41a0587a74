"""Where a cell ran and with what code: git commit, host, device, SLURM job (README, "The
cell's outputs").

Recorded in ``summary.json`` (``provenance``) and as columns of ``cells.parquet``. It is
never part of a cell's results: nothing here touches an RNG, a tensor or the training
loop, so two runs that differ only in where they ran differ only in these fields.
Gathering never fails: whatever cannot be found (no git, not a checkout, no CUDA) is None.

The git state is that of the checkout the running code comes from, found from this
module's own location, so a workflow started in some other directory still records the
code's commit. It costs two ``git`` calls per process (cached), each with a timeout.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
GIT_TIMEOUT = 10.0
"""Seconds a git call may take; a hung network filesystem must not stop a training job."""

SLURM_VARIABLES = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
}
FIELDS = (
    "git_commit",
    "git_dirty",
    "host",
    "device",
    "gpu_name",
    "cuda_version",
    "cudnn_version",
    *SLURM_VARIABLES,
    "cuda_visible_devices",
)
"""The keys of one run's provenance, in order."""


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess | None:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock to refresh it, or
    # many cells starting at once (or the user's own `git commit`) would collide on it.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def git_state(directory: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout that holds ``directory``'s ``__init__.py``.

    ``commit`` is the hash of HEAD, ``dirty`` whether ``git status --porcelain`` lists
    anything (changed, staged or untracked files that are not ignored). ``(None, None)``
    when git is missing, times out, or ``directory`` is not tracked in a checkout: a
    package installed into a virtual environment inside some other repository is not
    that repository's code.
    """
    tracked = _git(directory, "ls-files", "--error-unmatch", "--", "__init__.py")
    if tracked is None or tracked.returncode != 0:
        return None, None
    status = _git(directory, "status", "--porcelain=v2", "--branch")
    if status is None or status.returncode != 0:
        return None, None
    lines = status.stdout.splitlines()
    heads = [line.split()[2] for line in lines if line.startswith("# branch.oid ")]
    commit = heads[0] if heads and heads[0] != "(initial)" else None
    return commit, any(not line.startswith("#") for line in lines)


def cuda_details(device_type: str) -> dict[str, Any]:
    """GPU model, CUDA and cuDNN versions of a CUDA run; None on any other device."""
    if device_type != "cuda":
        return {"gpu_name": None, "cuda_version": None, "cudnn_version": None}
    import torch

    return {
        "gpu_name": torch.cuda.get_device_name(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
    }


def slurm_task_index(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def gather(device_type: str) -> dict[str, Any]:
    """This process's provenance (:data:`FIELDS`) for a run on ``device_type``."""
    commit, dirty = git_state()
    slurm = {key: os.environ.get(name) for key, name in SLURM_VARIABLES.items()}
    slurm["slurm_array_task_id"] = slurm_task_index(slurm["slurm_array_task_id"])
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "host": socket.gethostname(),
        "device": device_type,
        **cuda_details(device_type),
        **slurm,
        # As the training process sees it: after `--gpu-slots` chose a GPU, or as SLURM set it.
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
