"""The live objects of one run and the state that must survive a restart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from normstudy.data import DatasetSplits
    from normstudy.epochs import Plan
    from normstudy.probes.runner import ProbeRunner


@dataclass
class RunState:
    """Everything of a run that is not in the model or optimizer and must survive a restart."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    permutation: torch.Tensor | None = None
    running_loss: float = 0.0
    running_correct: float = 0.0
    running_count: int = 0
    curves: list[dict] = field(default_factory=list)
    probe_records: list[dict] = field(default_factory=list)
    probe_seconds: dict[str, float] = field(default_factory=dict)
    probe_errors: list[str] = field(default_factory=list)
    status: str = "running"
    diverged_step: int | None = None
    diverged_epoch: int | None = None
    diverged_reason: str | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    samples_seen: int = 0
    resumed: int = 0
    runs: list[dict] = field(default_factory=list)
    """The provenance of every run that worked on the cell (:mod:`normstudy.provenance`),
    oldest first; kept in the checkpoint, so a resumed cell also knows where it started."""


@dataclass
class Cell:
    """The live objects of one run."""

    config: dict
    splits: DatasetSplits
    plan: Plan
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generators: dict[str, torch.Generator]
    train_x: torch.Tensor
    train_y: torch.Tensor
    state: RunState
    probes: ProbeRunner | None = None
    train_forward: Any = None
    """The model's forward for training steps: ``torch.compile(model)`` or the model itself."""
