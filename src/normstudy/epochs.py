"""How many optimizer steps, of which examples, a cell's training takes: torch-free, so
that :mod:`normstudy.train` (which runs the steps), :mod:`normstudy.estimate` (which
prices them) and :mod:`normstudy.grid` (which sizes jobs) count the same steps.

Per epoch of ``n`` training examples at batch size ``b`` (:func:`batch_bounds`):

- shuffled (``shuffle: true``, not ``full_batch``): ``n // b`` full batches; the
  remainder is dropped, a different one every epoch;
- unshuffled (``shuffle: false``): ``ceil(n / b)`` batches, the last one partial, except
  that a remainder of one example joins the batch before it (``n // b`` batches);
- ``full_batch: true``: one batch of all ``n`` examples (``b = n``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normstudy.config import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass
class Plan:
    """How long training lasts, in steps and epochs, as :mod:`normstudy.train` runs it."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    epochs: int
    num_train: int
    shuffled: bool

    @classmethod
    def for_config(cls, config: dict, num_train: int) -> Plan:
        batch_size = num_train if config["full_batch"] else config["batch_size"]
        if batch_size > num_train:
            raise ConfigError(
                f"config key 'batch_size' = {batch_size} is larger than the training set "
                f"({num_train} examples of {config['dataset']!r} after the validation split"
                f"{' and train_subset' if config['train_subset'] else ''}); use at most "
                f"{num_train} or full_batch: true"
            )
        shuffled = config["shuffle"] and not config["full_batch"]
        steps_per_epoch = len(batch_bounds(num_train, batch_size, shuffled=shuffled))
        if config["steps"] is not None:
            total = config["steps"]
            epochs = math.ceil(total / steps_per_epoch)
        else:
            epochs = config["epochs"]
            total = epochs * steps_per_epoch
        return cls(batch_size, steps_per_epoch, total, epochs, num_train, shuffled)

    def bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each batch of an epoch (:func:`batch_bounds`)."""
        return batch_bounds(self.num_train, self.batch_size, shuffled=self.shuffled)

    @property
    def examples(self) -> int:
        """Examples processed by all ``total_steps`` training steps (a partial last batch
        of an unshuffled epoch counts its own size; ``steps`` may end inside an epoch)."""
        sizes = [stop - start for start, stop in self.bounds()]
        epochs, steps_left = divmod(self.total_steps, self.steps_per_epoch)
        return epochs * sum(sizes) + sum(sizes[:steps_left])

    def batch(self, permutation: torch.Tensor, index: int) -> torch.Tensor:
        """The example indices of batch ``index`` of an epoch ordered by ``permutation``."""
        start, stop = self.bounds()[index]
        return permutation[start:stop]


def batch_bounds(num_train: int, batch_size: int, *, shuffled: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of an epoch, as positions in the epoch's order.

    Shuffled epochs take ``num_train // batch_size`` full batches of a fresh permutation:
    the remainder left out differs every epoch, so over epochs every example is trained
    on equally often.

    Unshuffled epochs go through the training set in the same fixed order every epoch
    and use every example exactly once, keeping the last, partial batch. Morwani (2020)
    §5 contrasts BN with shuffling ("BN_reg: examples are shuffled across each epoch so
    that BN has a regularization effect") and without ("BN_without_reg: examples are not
    shuffled"): the only difference is that without shuffling every example meets the
    same batch companions, hence the same batch statistics, every epoch. Dropping the
    remainder would instead never train on the same ``num_train % batch_size``
    examples; wrapping around to fill the last batch would weight some examples twice
    per epoch. Keeping the partial batch is what an unshuffled epoch of a standard data
    loader does (no ``drop_last``). A remainder of a single example joins the batch
    before it: Batch Norm in training mode needs at least two values per channel (a
    one-example batch fails in an MLP and normalizes an image by its own statistics in
    a convolutional net), so the last batch then has ``batch_size + 1`` examples.
    """
    full, remainder = divmod(num_train, batch_size)
    bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(full)]
    if shuffled or remainder == 0:
        return bounds
    if remainder == 1 and bounds:
        bounds[-1] = (bounds[-1][0], num_train)
        return bounds
    return [*bounds, (full * batch_size, num_train)]
