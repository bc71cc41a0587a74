"""Stop a training job whose ``snakemake`` died: local jobs are not killed with it.

A local job runs as ``snakemake -> bash -> python -m normstudy.cli train``. When
``snakemake`` is killed (SIGKILL, a lost session), its children are not: they are
re-parented and would train on with nobody to collect their results, while the next
``snakemake`` starts the same cells again. With ``normstudy train --stop-with-snakemake``
(what the workflow passes) a thread watches the chain of ancestor processes up to
``snakemake``; when one of them ends (or is re-parented, which is how its parent's death
shows), the cell checkpoints at its next step and exits with status 75, as on SIGTERM,
and the next run resumes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

INTERVAL = 1.0
MAX_DEPTH = 6
_remembered: list[tuple[int, int]] | None = None
# The chain recorded by the client of a warm cell when it started (normstudy.warm forks
# the cell from a server outside snakemake's process tree, maybe after snakemake died).
_inherited: list[tuple[int, int]] | None = None


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc, or None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def is_snakemake(pid: int) -> bool:
    """Whether ``pid`` runs snakemake (:func:`runs_snakemake`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return runs_snakemake([arg.decode(errors="replace") for arg in argv])


def runs_snakemake(argv: list[str]) -> bool:
    """``snakemake ...``, ``python .../bin/snakemake ...`` or ``python -m snakemake ...``:
    the last is how the SLURM executor starts the Snakemake of each job and job step, whose
    training cells (under ``proctrack/linuxproc``, nothing else ends them) must stop when
    it is killed, as local cells do."""
    if any(Path(arg).name == "snakemake" for arg in argv[:2]):
        return True
    return len(argv) >= 3 and argv[1:3] == ["-m", "snakemake"]


def ancestor_chain() -> list[tuple[int, int]]:
    """(pid, parent pid) from this process up to the first ``snakemake`` ancestor (included);
    empty if there is none (run by hand) or /proc is unavailable."""
    chain = []
    pid = os.getpid()
    for _ in range(MAX_DEPTH):
        parent = parent_of(pid)
        if parent is None or parent <= 1:
            return []
        chain.append((pid, parent))
        if is_snakemake(parent):
            grandparent = parent_of(parent)
            return chain + ([(parent, grandparent)] if grandparent else [])
        pid = parent
    return []


def remember_ancestors() -> None:
    """Record the chain now, at the start of the process: snakemake may die before training
    starts (while the data loads), and a chain read after that no longer leads to it."""
    global _remembered
    _remembered = _inherited if _inherited is not None else ancestor_chain()


def inherit_ancestors(chain: list[tuple[int, int]]) -> None:
    """Watch ``chain`` (recorded by another process, the warm client) instead of this
    process's own ancestors."""
    global _inherited
    _inherited = [(int(pid), int(parent)) for pid, parent in chain]


def broken_link(chain: list[tuple[int, int]]) -> int | None:
    """The first ancestor in ``chain`` whose parent changed or that is gone, or None."""
    for pid, parent in chain:
        if parent_of(pid) != parent:
            return pid
    return None


def ended_text(chain: list[tuple[int, int]], broken: int, snakemake: int) -> str:
    """Which process of the chain ended: the parent of the broken link (its child was
    re-parented), or the link itself if it is gone too."""
    parent = dict(chain)[broken]
    ended = parent if parent_of(broken) is not None else broken
    if ended == snakemake:
        return f"its snakemake (pid {snakemake}) ended"
    return f"process {ended} between it and its snakemake (pid {snakemake}) ended"


def watch_ancestors(on_gone: Callable[[str], None]) -> threading.Event | None:
    """Call ``on_gone(reason)`` once if the chain to ``snakemake`` breaks; returns the
    event that stops the watching thread (None if there is no snakemake ancestor)."""
    chain = _remembered if _remembered is not None else ancestor_chain()
    if not chain:
        return None
    snakemake = chain[-1][0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(INTERVAL):
            broken = broken_link(chain)
            if broken is not None:
                on_gone(ended_text(chain, broken, snakemake))
                return

    threading.Thread(target=watch, name="normstudy-parent-watch", daemon=True).start()
    return stop
