"""The per-dataset tensor cache that ``prepare_data`` writes once and training jobs read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from normstudy.data import DatasetSplits, load_dataset
from normstudy.grid import DATA_KEYS, data_key
from normstudy.io import atomic_path

TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


def build_cache(
    config: dict[str, Any], path: str | Path, *, data_dir=None, download=False
) -> DatasetSplits:
    """Load the dataset of ``config`` and save its splits to ``path`` (atomically)."""
    splits = load_dataset(
        config["dataset"],
        data_dir=data_dir,
        download=download,
        val_size=config["val_size"],
        split_seed=config["split_seed"],
        **config["dataset_options"],
    )
    save_cache(splits, config, path)
    return splits


def save_cache(splits: DatasetSplits, config: dict[str, Any], path: str | Path) -> None:
    """Save ``splits`` to ``path`` (atomically) as the data cache of ``config``'s data settings."""
    payload = {name: getattr(splits, name) for name in TENSORS}
    payload["meta"] = {
        "key": data_key(config),
        "fixed": {key: config[key] for key in DATA_KEYS},
        "name": splits.name,
        "mean": list(splits.mean),
        "std": list(splits.std),
        "num_classes": splits.num_classes,
        "input_shape": list(splits.input_shape),
        "augment": splits.augment,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_cache(path: str | Path, config: dict[str, Any]) -> DatasetSplits:
    """The splits saved at ``path``; fails if they were made for other data settings."""
    payload = torch.load(path, weights_only=True)
    meta = payload["meta"]
    if meta["key"] != data_key(config):
        raise ValueError(
            f"data cache {path} holds {meta['fixed']}, not the data of this cell "
            f"({ {key: config[key] for key in DATA_KEYS} })"
        )
    return DatasetSplits(
        name=meta["name"],
        **{name: payload[name] for name in TENSORS},
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        num_classes=meta["num_classes"],
        input_shape=tuple(meta["input_shape"]),
        augment=meta["augment"],
    )
