"""Which warm server a client may use: one per user, machine, interpreter, code, resource
limits and job.

Standard library only: the client imports this before anything else.
"""

from __future__ import annotations

import hashlib
import os
import resource
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
# Variables read when torch/numpy/normstudy are imported (thread pools, devices, the
# allocator, hash seed): a server imported under other values is another server.
IMPORT_TIME_PREFIXES = (
    "PYTHON",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "CUDA_",
    "TORCH",
    "PYTORCH",
    "LD_",
    "KMP_",
    "CUBLAS_",
    "NORMSTUDY_",
)
# A SLURM job's cells must run inside its own cgroup and die with it: never share a server
# across jobs, steps or array tasks.
SLURM_KEYS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
# What SLURM sets per srun step and the server of a SLURM job (started in the job's batch
# step, normstudy.warm.jobserver) cannot match; none is read at import: a cell applies its
# step's values after the fork, before CUDA starts (normstudy.warm.server.run_cell).
STEP_VARIABLES = (
    "SLURM_STEP_ID",
    "CUDA_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "ROCR_VISIBLE_DEVICES",
)


def source_digest(package: Path = PACKAGE) -> str:
    """sha256 over every ``.py`` under the normstudy package (path and content): a code
    change never reuses a server that imported the old code."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def import_environment(environ: dict[str, str]) -> dict[str, str]:
    """The part of ``environ`` that can change what an import does."""
    return {
        k: v
        for k, v in sorted(environ.items())
        if k.startswith(IMPORT_TIME_PREFIXES) or k in SLURM_KEYS
    }


def resource_limits() -> list[str]:
    """This process's resource limits (``ulimit``: file size, memory, CPU time, ...). A
    forked cell has its server's, which has those of the client that started it: a client
    under other limits needs a server of its own, or its cell would ignore them."""
    limits = []
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        try:
            limits.append(f"{name}={resource.getrlimit(getattr(resource, name))}")
        except (ValueError, OSError):  # a limit this kernel does not have
            continue
    return limits


def server_key(
    environ: dict[str, str],
    digest: str,
    executable: str = sys.executable,
    limits: list[str] | None = None,
) -> str:
    """A short hash of everything that must match between a client and its server."""
    parts = [executable, socket.gethostname(), digest]
    parts += [f"{k}={v}" for k, v in import_environment(environ).items()]
    parts += resource_limits() if limits is None else limits
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


# Set by a bundle's batch step when it starts no server (one cell, or the start failed):
# its cells, which inherit it, say why in their logs.
NO_SERVER_ENV = "NORMSTUDY_WARM_NO_SERVER"


def in_slurm_job(environ: Mapping[str, str]) -> bool:
    return "SLURM_JOB_ID" in environ


def job_server_path(environ: dict[str, str], digest: str, executable: str = sys.executable) -> Path:
    """The socket of the server of the SLURM job ``environ`` runs in: keyed like any server,
    without the variables that differ between the job's batch step and its srun steps."""
    shared = {k: v for k, v in environ.items() if k not in STEP_VARIABLES}
    return socket_directory() / f"job-{server_key(shared, digest, executable)}.sock"


def server_path(environ: dict[str, str], digest: str) -> Path:
    """The socket a client uses: its SLURM job's server inside a SLURM job, else this
    machine's server for its environment."""
    if in_slurm_job(environ):
        return job_server_path(environ, digest)
    return socket_directory() / f"{server_key(environ, digest)}.sock"


def socket_directory() -> Path:
    """A 0700 directory of this user's: $XDG_RUNTIME_DIR or /tmp/normstudy-warm-<uid>."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "normstudy-warm" if runtime else None
    if base is None:
        base = Path("/tmp") / f"normstudy-warm-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = base.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{base} is not a private directory of this user")
    return base
