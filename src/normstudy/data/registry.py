"""The dataset loaders: name -> loader function, one per entry of the dataset catalog.

A loader is called as ``loader(data_dir=..., download=..., val_size=..., split_seed=...,
**options)`` with every option of the dataset's catalog entry
(:data:`normstudy.catalog.DATASETS`), defaults filled in and checked; adding a dataset is
one catalog entry plus one function with a ``register`` line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from normstudy.catalog import DATASETS
from normstudy.data.base import DatasetSplits
from normstudy.registry import Registry

Loader = Callable[..., DatasetSplits]
LOADERS: Registry[Loader] = Registry(DATASETS)
COMMON_ARGUMENTS = ("data_dir", "download", "val_size", "split_seed")
DATA_DIR_VARIABLE = "NORMSTUDY_DATA_DIR"


def default_data_dir() -> Path:
    """``$NORMSTUDY_DATA_DIR`` if set, else ``./data`` (relative to the working directory)."""
    return Path(os.environ.get(DATA_DIR_VARIABLE, "data"))


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_size: int | float = 0.1,
    split_seed: int = 0,
    **options: object,
) -> DatasetSplits:
    """Train/val/test splits of dataset ``name``.

    ``val_size`` (a count or a fraction of the training pool; 0 gives empty validation
    tensors) is carved from the training pool with ``split_seed``. ``data_dir`` (default:
    :func:`default_data_dir`) is where file-backed datasets live; ``download`` lets
    torchvision fetch missing ones. Embedded and synthetic datasets ignore both.
    """
    loader = LOADERS.get(name)
    merged = DATASETS[name].resolve("dataset", options)
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    return loader(
        data_dir=directory,
        download=download,
        val_size=val_size,
        split_seed=split_seed,
        **merged,
    )
