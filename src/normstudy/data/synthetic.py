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

from normstudy.data.base import DatasetSplits, channel_mean_std, stratified_holdout
from normstudy.data.registry import LOADERS

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


@LOADERS.register("gaussian_noise")
def load_gaussian_noise(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
    d: int,
    d_useful: int,
    classes: int,
    n_per_class: int,
    n_val_per_class: int,
    n_test_per_class: int,
    signal: float,
    spread: float,
    data_seed: int,
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


SENTIMENT_WORDS = 8
"""Sentiment-bearing words per class in ``synthetic_sentiment`` (``pos0..``, ``neg0..``)."""


def synthetic_sentiment_texts(
    n: int, neutral: int, min_length: int, max_length: int, data_seed: int
) -> tuple[list[str], np.ndarray]:
    """SYNTHETIC texts and 0/1 labels: a stand-in for tweets, not data about language.

    Each text has a length uniform in ``min_length .. max_length`` words. Its 1 to 3
    sentiment words sit at random positions among neutral filler words ``w0 ..`` drawn
    from a Zipf-like law (weight 1 / (rank + 1)), so rare fillers fall below the
    vocabulary's ``min_count`` and exercise the OOV id as real tweets do. The label is the
    majority polarity of the sentiment words: positive (``pos*``) or negative (``neg*``);
    with 3 words one may be of the other polarity, so a bag-of-one-word rule is not enough.
    """
    generator = np.random.default_rng(data_seed)
    weights = 1.0 / np.arange(1, neutral + 1)
    weights /= weights.sum()
    labels = np.arange(n, dtype=np.int64) % 2
    generator.shuffle(labels)
    texts = []
    for label in labels:
        length = int(generator.integers(min_length, max_length + 1))
        count = int(generator.integers(1, min(3, length) + 1))
        # With 3 sentiment words, one may disagree; the majority still sets the label.
        polarities = [int(label)] * count
        if count == 3 and generator.random() < 0.5:
            polarities[0] = 1 - int(label)
        words = [f"w{i}" for i in generator.choice(neutral, size=length, p=weights)]
        for position, polarity in zip(
            generator.choice(length, size=count, replace=False), polarities, strict=True
        ):
            prefix = "pos" if polarity else "neg"
            words[position] = f"{prefix}{generator.integers(SENTIMENT_WORDS)}"
        texts.append(" ".join(words))
    return texts, labels


@LOADERS.register("synthetic_sentiment")
def load_synthetic_sentiment(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
    n: int,
    neutral: int,
    min_length: int,
    max_length: int,
    min_count: int,
    data_seed: int,
) -> DatasetSplits:
    """SYNTHETIC binary sentiment task (:func:`synthetic_sentiment_texts`): the offline
    demo counterpart of ``sentiment140`` (Torri 2022, §3.1), through the same tokenizer,
    train-only vocabulary (``min_count``, Torri: 2), OOV and padding to ``max_length``.
    A fixed stratified 20% test split (:data:`~normstudy.data.embedded.TEST_FRACTION`,
    independent of ``split_seed``), then ``val_size`` from the rest with ``split_seed``,
    as for the embedded image datasets."""
    from normstudy.data.embedded import TEST_FRACTION
    from normstudy.data.text import TEST_SEED, token_splits

    for what, value, least in (
        ("n", n, 10),
        ("neutral", neutral, 1),
        ("min_length", min_length, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"synthetic_sentiment {what} must be an integer >= {least}")
    if max_length < min_length:
        raise ValueError(f"max_length {max_length} must be >= min_length {min_length}")
    texts, labels = synthetic_sentiment_texts(n, neutral, min_length, max_length, data_seed)
    pool_idx, test_idx = stratified_holdout(labels, round(TEST_FRACTION * n), TEST_SEED)
    return token_splits(
        "synthetic_sentiment",
        texts,
        labels,
        test_idx,
        pool_idx,
        val_size=val_size,
        split_seed=split_seed,
        min_count=min_count,
        max_length=max_length,
        glove=None,
    )
