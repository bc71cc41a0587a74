"""The per-dataset tensor cache that ``prepare_data`` writes once and training jobs read."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from normstudy.config import canonical_json
from normstudy.data import DatasetSplits, load_dataset
from normstudy.datamanifest import manifest_path
from normstudy.grid import DATA_KEYS, data_key
from normstudy.io import write_bytes_atomic, write_text_atomic

TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
META_KEYS = (
    "key",
    "fixed",
    "name",
    "mean",
    "std",
    "num_classes",
    "input_shape",
    "augment",
    "digest",
)


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


def data_digest(splits: DatasetSplits) -> str:
    """SHA-256 of the data a cell trains on: every split's tensors (dtype, shape, bytes)
    and the normalisation; recorded in each cell's ``summary.json``."""
    digest = hashlib.sha256()
    for name in TENSORS:
        tensor = getattr(splits, name).detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(
            memoryview(tensor.reshape(-1).view(torch.uint8).numpy()) if tensor.numel() else b""
        )
    extra = [splits.name, list(splits.mean), list(splits.std), splits.num_classes]
    if splits.tokens:
        # Only token datasets add these, so the digests of the others stay as they were.
        extra.append(splits.vocab_size)
        if splits.embeddings is not None:
            digest.update(
                memoryview(splits.embeddings.contiguous().view(-1).view(torch.uint8).numpy())
            )
    digest.update(canonical_json({"meta": extra}).encode())
    return digest.hexdigest()


def save_cache(splits: DatasetSplits, config: dict[str, Any], path: str | Path) -> None:
    """Save ``splits`` to ``path`` (atomically) as the data cache of ``config``'s data
    settings, then its manifest (:mod:`normstudy.datamanifest`)."""
    payload = {name: getattr(splits, name) for name in TENSORS}
    digest = data_digest(splits)
    payload["meta"] = {
        "key": data_key(config),
        "fixed": {key: config[key] for key in DATA_KEYS},
        "name": splits.name,
        "mean": list(splits.mean),
        "std": list(splits.std),
        "num_classes": splits.num_classes,
        "input_shape": list(splits.input_shape),
        "augment": splits.augment,
        "digest": digest,
        "vocab_size": splits.vocab_size,
    }
    if splits.embeddings is not None:
        payload["embeddings"] = splits.embeddings
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    write_bytes_atomic(path, data)
    stat = Path(path).stat()
    manifest = {
        "key": data_key(config),
        "digest": digest,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    write_text_atomic(manifest_path(path), json.dumps(manifest, indent=2) + "\n")


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
    splits = DatasetSplits(
        name=meta["name"],
        **{name: payload[name] for name in TENSORS},
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        num_classes=meta["num_classes"],
        input_shape=tuple(meta["input_shape"]),
        augment=meta["augment"],
        vocab_size=meta.get("vocab_size"),
        embeddings=payload.get("embeddings"),
    )
    if data_digest(splits) != meta["digest"]:
        raise DataCacheError(
            f"data cache {path}: its tensors do not match the digest it was saved with "
            "(the file was altered); delete it and run again to rebuild it"
        )
    return splits
