"""Datasets as whole tensors: a loader per catalog entry, splits, standardisation and augmentation.

Importing this package registers every dataset (one module per source, as in open_lth).
"""

from normstudy.data import (  # noqa: F401 (registration)
    embedded,
    synthetic,
    text,
    torchvision_sets,
)
from normstudy.data.augment import augment_batch
from normstudy.data.base import (
    DatasetNotFoundError,
    DatasetSplits,
    channel_mean_std,
    rows_as_sequence,
    standardize,
    to_float,
)
from normstudy.data.registry import LOADERS, default_data_dir, load_dataset

__all__ = [
    "DatasetNotFoundError",
    "DatasetSplits",
    "LOADERS",
    "augment_batch",
    "channel_mean_std",
    "default_data_dir",
    "load_dataset",
    "rows_as_sequence",
    "standardize",
    "to_float",
]
