"""Train one cell: a fully resolved config -> a finished cell directory.

The loop follows the schedule of Frankle et al. (2020, §3): SGD with momentum,
step-wise learning-rate decay at fractions of training, weight decay on every
trainable parameter (including gamma and beta unless ``weight_decay_norm`` is off).
Frozen parameters never enter the optimizer. Divergence (a non-finite loss or
parameters whose global norm exceeds ``divergence_threshold``) ends the cell early
with status ``diverged``: a result, not a crash (Morwani 2020 §3, max stable lr).

Resumability: a checkpoint holds the model, optimizer, schedule, every RNG state,
the position inside the epoch and the partial curves; it is written atomically every
``checkpoint_every`` epochs and when SIGTERM or SIGUSR1 arrive (what SLURM sends before
a time limit or preemption), after which the process exits with
:data:`EXIT_CHECKPOINTED`. Running the same command again resumes bitwise-identically
on the same machine.

One module per job: :mod:`.runtime` (seeds, device, threads, signals), :mod:`.state`,
:mod:`.schedule` (optimizer, learning rate), :mod:`.batches`, :mod:`.prepare`,
:mod:`.loop`, :mod:`.checkpoint`, :mod:`.summary` and :mod:`.cell` (the entry point);
the probes run through :class:`normstudy.probes.runner.ProbeRunner`.
"""

from normstudy.train.batches import data_loss, inputs_for_model, training_losses
from normstudy.train.cell import completed_summary, train_cell
from normstudy.train.checkpoint import restore_checkpoint, save_checkpoint
from normstudy.train.loop import evaluate, run_epochs, train_step
from normstudy.train.prepare import prepare, train_subset
from normstudy.train.runtime import (
    EXIT_CHECKPOINTED,
    Checkpointed,
    choose_device,
    use_deterministic_algorithms,
)
from normstudy.train.schedule import learning_rate_factor, optimizer_for
from normstudy.train.state import Cell, RunState

__all__ = [
    "EXIT_CHECKPOINTED",
    "Cell",
    "Checkpointed",
    "RunState",
    "choose_device",
    "completed_summary",
    "data_loss",
    "evaluate",
    "inputs_for_model",
    "learning_rate_factor",
    "optimizer_for",
    "prepare",
    "restore_checkpoint",
    "run_epochs",
    "save_checkpoint",
    "train_cell",
    "train_step",
    "train_subset",
    "training_losses",
    "use_deterministic_algorithms",
]
