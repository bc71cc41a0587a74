"""One workflow run per results directory, whatever the working directory.

Snakemake's own lock lives in the working directory (``.snakemake/locks``): two runs
started from different directories with one absolute ``results:`` would both train the
same cells at once. :func:`lock_results` takes an exclusive ``flock`` on
``<results>/.normstudy.lock`` for the life of the ``snakemake`` process (the workflow's
``onstart``); the kernel releases it when the process ends, however it ends, so there is
nothing to unlock after a crash. The lock file records who holds it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".normstudy.lock"
_held: dict[str, int] = {}


def lock_results(results: str | os.PathLike[str]) -> str | None:
    """Lock ``results`` for this process; None on success, else who holds it."""
    directory = Path(results).resolve()
    if str(directory) in _held:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = path.read_text(errors="replace").strip() or "another process"
        os.close(fd)
        return holder
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    holder = f"snakemake pid {os.getpid()} on {socket.gethostname()}, run from {os.getcwd()}"
    os.ftruncate(fd, 0)
    os.write(fd, f"{holder}, since {stamp}\n".encode())
    _held[str(directory)] = fd
    return None


def refusal(results: str | os.PathLike[str], holder: str) -> str:
    return (
        f"normstudy: error: {Path(results).resolve()} is in use by another workflow run "
        f"({holder}); two runs on one results directory would train the same cells at once. "
        "Wait for it to end, or give this run another `results:`."
    )
