"""The process a cell runs in: seed streams, device, threads, deterministic kernels, and
the signals that make it checkpoint and exit."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np
import torch

EXIT_CHECKPOINTED = 75
"""Exit status after checkpointing on SIGTERM/SIGUSR1 (sysexits EX_TEMPFAIL: retry me)."""


STREAMS = ("init", "data", "augment", "noise", "probes", "freeze")
"""Seed streams, appended only: a SeedSequence's i-th child is the same whatever the
number spawned, so a new stream leaves the seeds of the others unchanged."""


class Checkpointed(SystemExit):
    """Raised after a signal-triggered checkpoint; carries :data:`EXIT_CHECKPOINTED`."""

    def __init__(self) -> None:
        super().__init__(EXIT_CHECKPOINTED)


def stream_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for init, data order, augmentation, noise, probes and the weights
    that freeze ``random`` trains."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    states = [int(child.generate_state(1)[0]) for child in children]
    return dict(zip(STREAMS, states, strict=True))


def choose_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_threads() -> int:
    """CPU threads this job may use: its CPU affinity (what SLURM/cgroups grant), not the node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def use_deterministic_algorithms(*, compiled: bool) -> None:
    """Deterministic kernels (warning where none exists), without NaN-filling fresh memory.

    ``torch.use_deterministic_algorithms`` also imports ``torch._inductor.config`` to set
    inductor's flag, which cost 2.5 s of a cell under load (BENCHMARKS.md, per-cell
    overhead; ``python -X importtime`` of the public call measured 6.6 s and 878 more
    modules than the private one on 2 busy cores); an uncompiled run never reads that
    flag, so it sets only the kernel switch. ``fill_uninitialized_memory`` (on by default
    in deterministic mode) writes NaN into every new tensor, about 8% of a ResNet-20 step
    on CPU; results do not change, since no kernel reads memory it has not written.

    ``torch._C._set_deterministic_algorithms`` is private: torch has no public switch
    for the kernels alone. ``tests/test_train.py`` (deterministic kernels without
    inductor) checks its effect through the public getters, so a torch that changes or
    drops it fails that test loudly instead of training nondeterministically.
    """
    if compiled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


class SignalFlag:
    """Remembers that SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 arrived (or, with
    ``stop_with_snakemake``, that the snakemake that started this job ended:
    :mod:`normstudy.parentwatch`); the loop checkpoints at the next step, so an interrupted
    cell loses no step."""

    SIGNALS = tuple(
        s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s
    )

    def __init__(self, stop_with_snakemake: bool = False) -> None:
        self.received: int | None = None
        self.reason: str | None = None
        self.stop_with_snakemake = stop_with_snakemake
        self._previous: dict[int, Any] = {}
        self._watch = None

    def __enter__(self) -> SignalFlag:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        if self.stop_with_snakemake:
            from normstudy.parentwatch import watch_ancestors

            self._watch = watch_ancestors(self._parent_gone)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        self.reason = f"signal {signum}"

    def _parent_gone(self, reason: str) -> None:
        self.reason = reason
        self.received = signal.SIGTERM

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
