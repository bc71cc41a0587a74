"""Runs a cell's scheduled probes inside the training loop and keeps their records."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from normstudy.freeze import parameter_roles
from normstudy.probes import ProbeContext, run_probe, samples_needed

if TYPE_CHECKING:
    from normstudy.train.state import Cell


class ProbeRunner:
    """Runs the cell's scheduled probes and keeps their records in the run state.

    Probes see their own fixed subset of the training set (drawn once with the probes'
    RNG stream), the parameters at init (for distance from init) and the training loss;
    :func:`normstudy.probes.run_probe` isolates them, so training is unchanged. The
    training loop gives its ``loss_fn`` (the data loss, without regularizers) and
    ``model_inputs`` (how a batch of stored examples becomes the model's input).
    """

    def __init__(
        self,
        cell: Cell,
        entries: list,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        model_inputs: Callable[[torch.Tensor, object], torch.Tensor],
    ) -> None:
        self.cell = cell
        self.entries = entries
        self.loss_fn = loss_fn
        self.probes = [entry.build() for entry in entries]
        size = min(samples_needed(entries, cell.config, minimum=1), len(cell.train_y))
        generator = cell.generators["probes"]
        order = torch.randperm(len(cell.train_y), generator=generator)[:size].to(cell.device)
        self.probe_x = model_inputs(cell.train_x[order], cell.splits)
        self.probe_y = cell.train_y[order]
        self.roles = parameter_roles(cell.model)
        self.initial_params = {
            name: p.detach().clone() for name, p in cell.model.named_parameters()
        }

    def run(self, phase: str) -> None:
        state = self.cell.state
        for entry, probe in zip(self.entries, self.probes, strict=True):
            if not entry.due(phase, state.epoch, state.step):
                continue
            if phase == "epoch" and state.epoch == self.cell.plan.epochs and entry.at_end:
                continue
            context = ProbeContext(
                model=self.cell.model,
                config=self.cell.config,
                probe_x=self.probe_x,
                probe_y=self.probe_y,
                loss_fn=self.loss_fn,
                roles=self.roles,
                initial_params=self.initial_params,
                lr=float(self.cell.optimizer.param_groups[0]["lr"]),
                optimizer=self.cell.optimizer,
                generator=self.cell.generators["probes"],
                epoch=state.epoch,
                step=state.step,
                phase=phase,
            )
            records, seconds, error = run_probe(probe, context)
            label = probe.label
            state.probe_seconds[label] = state.probe_seconds.get(label, 0.0) + seconds
            if error:
                state.probe_errors.append(
                    f"{label} at epoch {state.epoch} step {state.step}: {error}"
                )
            state.probe_records.extend(
                {**record, "epoch": state.epoch, "step": state.step} for record in records
            )
