"""The per-dataset tensor cache that ``prepare_data`` writes once and training jobs read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from normstudy.data import DatasetSplits, load_dataset
from normstudy.grid import DATA_KEYS, data_key
from normstudy.io import write_torch_atomic

TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
META_KEYS = ("key", "fixed", "name", "mean", "std", "num_classes", "input_shape", "augment")


class DataCacheError(ValueError):
    """A data cache that cannot be used; the message names the file and what is wrong."""


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
    write_torch_atomic(path, payload)


def load_cache(path: str | Path, config: dict[str, Any]) -> DatasetSplits:
    """The splits saved at ``path``.

    Raises :class:`DataCacheError` if the file is unreadable (truncated, corrupt), lacks
    a split or its metadata, or was made for other data settings: a damaged cache is
    refused, never used; deleting it lets ``prepare_data`` rebuild it.
    """
    try:
        payload = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
        raise DataCacheError(
            f"data cache {path} is unreadable ({type(error).__name__}: {error}); "
            "delete it and run again to rebuild it"
        ) from error
    missing = [
        name
        for name in TENSORS
        if not isinstance(payload, dict) or not isinstance(payload.get(name), torch.Tensor)
    ]
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict):
        missing.append("meta")
    else:
        missing += [f"meta.{key}" for key in META_KEYS if key not in meta]
    if missing:
        raise DataCacheError(
            f"data cache {path} is incomplete (missing {', '.join(missing)}); "
            "delete it and run again to rebuild it"
        )
    if meta["key"] != data_key(config):
        raise DataCacheError(
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
