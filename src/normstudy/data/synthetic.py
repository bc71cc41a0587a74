"""The synthetic noise-robustness task of Morwani (2020, §5, "Robustness to noise").

Inputs have ``d`` coordinates; the first ``d_useful`` carry a linearly separable class signal
and the other ``d - d_useful`` are i.i.d. standard Gaussian noise (Morwani: d = 1000,
d_1 = 100, 5 classes, the number of training examples per class varied).

The paper does not say how the separable part is drawn; here it is separable by
construction. The class means ``mu_k = signal * u_k`` use orthonormal directions ``u_k`` in
the useful subspace (QR of a Gaussian matrix), so any two means are ``signal * sqrt(2)``
apart. Each example's useful part is ``mu_y + spread * z`` with ``z`` uniform in the unit
ball, so a class never leaves the ball of radius ``spread`` around its mean. With
``spread < signal / sqrt(2)`` the balls are disjoint with a margin, and the nearest-mean
rule ``argmax_k mu_k . x - |mu_k|^2 / 2`` (a linear classifier) labels every example
correctly. Defaults (signal 10, spread 5) put the useful coordinates on the same scale as
the noise ones (root-mean-square about 1).

Every (split, class, component) draws from its own stream seeded by ``data_seed``, so the
class means and the validation and test sets do not change with ``n_per_class``, and the
training set for n examples per class holds the first n of any larger one. Each split is
then shuffled once (a fixed order, also from ``data_seed``) so classes are interleaved.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from normstudy.data.base import DatasetSplits, channel_mean_std
from normstudy.data.registry import DATASETS

STREAMS = {"means": 0, "train": 1, "val": 2, "test": 3}
COMPONENTS = {"useful": 0, "noise": 1, "order": 2, "radius": 3}


def stream(data_seed: int, part: str, label: int, component: str) -> np.random.Generator:
    """An independent numpy generator for one (part, class, component) under ``data_seed``.

    Keys always have four entries: numpy's SeedSequence gives ``[a, b]`` and ``[a, b, 0]``
    the same state, so keys of different lengths could collide.
    """
    return np.random.default_rng([data_seed, STREAMS[part], label, COMPONENTS[component]])


def class_means(classes: int, d_useful: int, signal: float, data_seed: int) -> np.ndarray:
    """(classes, d_useful) means of norm ``signal`` along orthonormal directions."""
    gaussian = stream(data_seed, "means", 0, "useful").standard_normal((d_useful, classes))
    directions, _ = np.linalg.qr(gaussian)
    return signal * directions.T


def uniform_in_ball(
    direction_rng: np.random.Generator, radius_rng: np.random.Generator, n: int, dim: int
) -> np.ndarray:
    """(n, dim) points uniform in the unit ball (Gaussian direction, radius U^(1/dim))."""
    directions = direction_rng.standard_normal((n, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * radius_rng.uniform(size=(n, 1)) ** (1.0 / dim)


def class_examples(
    means: np.ndarray, label: int, n: int, d: int, spread: float, data_seed: int, split: str
) -> np.ndarray:
    """(n, d) examples of class ``label``: signal + bounded spread, then Gaussian noise."""
    ball = uniform_in_ball(
        stream(data_seed, split, label, "useful"),
        stream(data_seed, split, label, "radius"),
        n,
        means.shape[1],
    )
    noise = stream(data_seed, split, label, "noise").standard_normal((n, d - means.shape[1]))
    useful = means[label] + spread * ball
    return np.concatenate([useful, noise], axis=1)


def noise_split(
    means: np.ndarray, n_per_class: int, d: int, spread: float, data_seed: int, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (N, d) inputs and int64 labels of one split, classes interleaved."""
    classes = len(means)
    x = np.concatenate(
        [class_examples(means, k, n_per_class, d, spread, data_seed, split) for k in range(classes)]
    )
    y = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    order = stream(data_seed, split, 0, "order").permutation(len(y))
    return torch.from_numpy(x[order].astype(np.float32)), torch.from_numpy(y[order])


def check_noise_options(
    d: int, d_useful: int, classes: int, counts: dict[str, int], signal: float, spread: float
) -> None:
    """Fail on options that break the construction (module docstring), naming the bad value."""
    if not 1 <= d_useful <= d:
        raise ValueError(f"d_useful={d_useful} must be in [1, d={d}]")
    if not 2 <= classes <= d_useful:
        raise ValueError(
            f"classes={classes} must be in [2, d_useful={d_useful}] (one orthonormal mean each)"
        )
    for option, count in counts.items():
        smallest = 1 if option == "n_per_class" else 0
        if isinstance(count, bool) or not isinstance(count, int) or count < smallest:
            raise ValueError(f"{option}={count!r} must be an int >= {smallest}")
    if not 0 <= spread < signal / math.sqrt(2):
        raise ValueError(
            f"spread={spread} must be in [0, signal/sqrt(2) = {signal / math.sqrt(2):.4g}) "
            "for the classes to stay linearly separable"
        )


@DATASETS.register("gaussian_noise")
def load_gaussian_noise(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
    d: int = 1000,
    d_useful: int = 100,
    classes: int = 5,
    n_per_class: int = 100,
    n_val_per_class: int = 100,
    n_test_per_class: int = 1000,
    signal: float = 10.0,
    spread: float = 5.0,
    data_seed: int = 0,
) -> DatasetSplits:
    """Morwani's (2020, §5) noise-feature task; see the module docstring.

    The validation set is drawn (``n_val_per_class``), so ``val_size`` and ``split_seed``
    do not apply; ``data_seed`` fixes the dataset instance. ``mean``/``std`` are per
    feature over the train split. No augmentation.
    """
    counts = {
        "n_per_class": n_per_class,
        "n_val_per_class": n_val_per_class,
        "n_test_per_class": n_test_per_class,
    }
    check_noise_options(d, d_useful, classes, counts, signal, spread)
    means = class_means(classes, d_useful, signal, data_seed)
    train_x, train_y = noise_split(means, n_per_class, d, spread, data_seed, "train")
    val_x, val_y = noise_split(means, n_val_per_class, d, spread, data_seed, "val")
    test_x, test_y = noise_split(means, n_test_per_class, d, spread, data_seed, "test")
    mean, std = channel_mean_std(train_x)
    return DatasetSplits(
        name="gaussian_noise",
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        mean=mean,
        std=std,
        num_classes=classes,
        input_shape=(d,),
        augment=False,
    )
