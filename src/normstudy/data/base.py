"""What every dataset shares: the split container, splitting, statistics and standardisation.

The data path follows airbench (KellerJordan): a dataset is a few whole tensors (uint8 images
or float32 vectors) that live on the training device; batches are sliced, augmented and
standardised there, with no DataLoader workers and no per-image PIL transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "val", "test")
PAD = 0
"""Token id of padding (after each sequence's tokens, up to the dataset's max length)."""
OOV = 1
"""Token id of every word outside the vocabulary (Torri 2022, §3.1: "an out of vocabulary
embedding")."""
STATS_CHUNK = 4096


class DatasetNotFoundError(FileNotFoundError):
    """A dataset whose files are absent or rejected, with what was expected and how to get it."""

    def __init__(
        self,
        name: str,
        directory: Path,
        expected: Sequence[Path],
        missing: Sequence[Path],
        how: str,
    ) -> None:
        self.name = name
        self.directory = Path(directory)
        self.expected = list(expected)
        self.missing = list(missing)
        listed = "\n".join(
            f"  {path}{'  (missing)' if path in self.missing else ''}" for path in self.expected
        )
        problem = (
            f"missing {len(self.missing)} of its {len(self.expected)} files"
            if self.missing
            else "its files are present but were rejected"
        )
        super().__init__(
            f"dataset {name!r} not found in {self.directory}: {problem}.\n"
            f"Expected files:\n{listed}\n{how}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """Train, validation and test tensors of one dataset, with the train split's statistics.

    ``*_x`` are uint8 (N, C, H, W) images, float32 (N, D) vectors or int64 (N, T) token
    ids; ``*_y`` are int64 labels.
    ``mean`` and ``std`` are per channel (per feature for vectors) in the units of
    :func:`to_float`, computed on the train split only; token ids are indices, not
    measurements, so token datasets have empty ``mean`` and ``std``. ``augment`` says
    whether the Frankle et al. (2020) translation + flip augmentation applies (G42 2021, §5).

    Token datasets (Torri 2022, §3.1) also give ``vocab_size`` (ids are ``0 ..
    vocab_size - 1``, with :data:`PAD` and :data:`OOV` reserved; each sequence is its
    tokens then padding, so its length is its count of non-:data:`PAD` ids) and
    optionally ``embeddings``, a float32 (vocab_size, E) matrix to initialise the
    model's embedding layer with (pre-trained GloVe vectors).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    input_shape: tuple[int, ...]
    augment: bool
    vocab_size: int | None = None
    embeddings: torch.Tensor | None = None

    @property
    def tokens(self) -> bool:
        """Whether the inputs are token ids (a text dataset)."""
        return self.vocab_size is not None

    def __post_init__(self) -> None:
        valid = (torch.int64,) if self.tokens else (torch.uint8, torch.float32)
        for split in SPLITS:
            x, y = self.split(split)
            if x.dtype not in valid:
                raise TypeError(
                    f"{self.name} {split}_x has dtype {x.dtype}; valid: "
                    f"{', '.join(str(d).removeprefix('torch.') for d in valid)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise ValueError(
                    f"{self.name} {split}_y must be int64 of shape ({len(x)},), "
                    f"got {y.dtype} {tuple(y.shape)}"
                )
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"{self.name} {split}_x has shape {tuple(x.shape)}, "
                    f"expected (N, {', '.join(map(str, self.input_shape))})"
                )
        if self.tokens:
            self.check_tokens()
        elif not len(self.mean) == len(self.std) == self.input_shape[0]:
            raise ValueError(
                f"{self.name}: mean/std have {len(self.mean)}/{len(self.std)} entries "
                f"for {self.input_shape[0]} channels"
            )

    def check_tokens(self) -> None:
        if self.mean or self.std or self.augment or len(self.input_shape) != 1:
            raise ValueError(
                f"{self.name}: a token dataset has input_shape (T,), empty mean/std and no "
                f"augmentation; got {self.input_shape}, {self.mean}, {self.std}, {self.augment}"
            )
        for split in SPLITS:
            x = self.split(split)[0]
            if x.numel() and not 0 <= int(x.min()) <= int(x.max()) < self.vocab_size:
                raise ValueError(f"{self.name} {split}_x has ids outside 0..{self.vocab_size - 1}")
        if self.embeddings is not None and (
            self.embeddings.dtype != torch.float32
            or self.embeddings.dim() != 2
            or len(self.embeddings) != self.vocab_size
        ):
            raise ValueError(
                f"{self.name}: embeddings must be float32 ({self.vocab_size}, E); got "
                f"{self.embeddings.dtype} {tuple(self.embeddings.shape)}"
            )

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) tensors of ``split`` (one of train, val, test)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {split: len(self.split(split)[1]) for split in SPLITS}


def to_float(x: torch.Tensor) -> torch.Tensor:
    """float32 in the units mean/std are given in: uint8 images / 255, floats unchanged."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def channel_mean_std(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (dim 1) mean and population std of ``to_float(x)``, in float64.

    Accumulated over chunks of examples so a CIFAR-sized uint8 tensor is never copied to
    float whole.
    """
    if len(x) == 0:
        raise ValueError("cannot compute mean/std of an empty train split")
    reduce_dims = [0] + list(range(2, x.dim()))
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in torch.split(x, STATS_CHUNK):
        values = to_float(chunk).double()
        total += values.sum(reduce_dims).cpu()
        total_sq += values.square().sum(reduce_dims).cpu()
    count = x.numel() // x.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def standardize(
    x: torch.Tensor,
    stats: DatasetSplits | tuple[Sequence[float], Sequence[float]],
) -> torch.Tensor:
    """float32 ``(to_float(x) - mean) / std`` per channel (dim 1), on ``x.device``.

    ``stats`` is a :class:`DatasetSplits` (its train-split mean/std) or a ``(mean, std)``
    pair; int64 token ids pass through unchanged. Frankle et al. (2020) standardise inputs
    (G42 2021, §5, quoting their schedule); the statistics come from the train split only.
    """
    if x.dtype == torch.int64:
        # Token ids index an embedding; scaling them would make them meaningless.
        return x
    mean, std = (stats.mean, stats.std) if isinstance(stats, DatasetSplits) else stats
    if x.dim() < 2 or not len(mean) == len(std) == x.shape[1]:
        raise ValueError(
            f"x of shape {tuple(x.shape)} does not match mean/std of {len(mean)}/{len(std)} "
            "channels (channels are dim 1)"
        )
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(shape)
    return (to_float(x) - mean_t) / std_t


def rows_as_sequence(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images as (N, H, C*W) sequences of rows, for recurrent models (Torri 2022)."""
    if x.dim() != 4:
        raise ValueError(f"rows_as_sequence expects (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    return x.permute(0, 2, 1, 3).reshape(n, h, c * w)


def holdout_count(size: int | float, pool: int, what: str = "val_size") -> int:
    """Number of examples held out of ``pool``: an int count or a fraction in [0, 1)."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"{what} must be an int count or a float fraction, got {size!r}")
    if isinstance(size, float):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"{what} fraction {size!r} must be in [0, 1)")
        return round(size * pool)
    if not 0 <= size < pool:
        raise ValueError(f"{what} count {size!r} must be in [0, {pool}) for a pool of {pool}")
    return size


def stratified_holdout(
    labels: np.ndarray, n_holdout: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held-out) indices into ``labels``, ``n_holdout`` held out.

    Stratified by label (sklearn's ``train_test_split``) whenever every class has two
    members and both parts can hold one per class; otherwise a plain random split. The
    result depends only on ``labels``, ``n_holdout`` and ``seed``.
    """
    index = np.arange(len(labels))
    if n_holdout == 0:
        return index, index[:0]
    counts = np.unique(labels, return_counts=True)[1]
    stratify = (
        labels
        if counts.min() >= 2 and min(n_holdout, len(labels) - n_holdout) >= len(counts)
        else None
    )
    from sklearn.model_selection import train_test_split

    kept, held = train_test_split(
        index, test_size=n_holdout, stratify=stratify, random_state=seed, shuffle=True
    )
    return np.sort(kept), np.sort(held)


def splits_from_pools(
    name: str,
    train_pool: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    val_size: int | float,
    split_seed: int,
    num_classes: int,
    augment: bool,
) -> DatasetSplits:
    """Carve validation from ``train_pool`` with ``split_seed``.

    The validation split depends only on the pool, ``val_size`` and ``split_seed``, so it is
    the same in every cell with the same split seed. (A cell trains on a subset of the
    rest with the config key ``train_subset``.)
    """
    pool_x, pool_y = train_pool
    labels = pool_y.numpy()
    train_idx, val_idx = stratified_holdout(
        labels, holdout_count(val_size, len(labels)), split_seed
    )
    train_x = pool_x[torch.from_numpy(train_idx)]
    mean, std = channel_mean_std(train_x)
    return DatasetSplits(
        name=name,
        train_x=train_x,
        train_y=pool_y[torch.from_numpy(train_idx)],
        val_x=pool_x[torch.from_numpy(val_idx)],
        val_y=pool_y[torch.from_numpy(val_idx)],
        test_x=test[0],
        test_y=test[1],
        mean=mean,
        std=std,
        num_classes=num_classes,
        input_shape=tuple(pool_x.shape[1:]),
        augment=augment,
    )


def input_dtype(splits: DatasetSplits) -> torch.dtype:
    """The dtype of a model's input batch: int64 token ids, else standardised float32."""
    return torch.int64 if splits.tokens else torch.float32
