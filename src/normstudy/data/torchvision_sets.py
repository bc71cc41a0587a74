"""Standard image datasets read with torchvision's dataset classes from ``data_dir``.

Official train/test splits; validation is carved from train with ``split_seed``. Images
are taken whole from each dataset's ``.data`` array as one uint8 (N, C, H, W) tensor (the
airbench data path; no per-image PIL transforms). torchvision downloads only when
``download`` is true; otherwise missing files raise :class:`DatasetNotFoundError` naming
the directory, the files expected there and how to get them.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normstudy.catalog import DATASETS
from normstudy.data.base import DatasetNotFoundError, DatasetSplits, splits_from_pools
from normstudy.data.registry import LOADERS

Arrays = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TorchvisionSource:
    """How one torchvision dataset class is opened, where its files live and how to read it."""

    name: str
    class_name: str
    augment: bool
    open_split: Callable[[type, Path, bool, bool], object]
    arrays: Callable[[object], Arrays]
    files: Callable[[type, Path], list[Path]]
    train_count: int
    test_count: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return DATASETS[self.name].input_shape

    @property
    def num_classes(self) -> int:
        return DATASETS[self.name].classes

    @property
    def cls(self) -> type:
        """The torchvision dataset class (imported on first use: torchvision is slow to load)."""
        return getattr(importlib.import_module("torchvision.datasets"), self.class_name)

    @property
    def url(self) -> str:
        """Where torchvision downloads the files from."""
        if hasattr(self.cls, "mirrors"):
            return self.cls.mirrors[0]
        return getattr(self.cls, "url", "http://ufldl.stanford.edu/housenumbers/")


def open_train_flag(cls: type, root: Path, train: bool, download: bool) -> object:
    return cls(root=str(root), train=train, download=download)


def open_svhn_split(cls: type, root: Path, train: bool, download: bool) -> object:
    return cls(root=str(root), split="train" if train else "test", download=download)


def mnist_arrays(dataset: object) -> Arrays:
    """MNIST-format ``.data`` is uint8 (N, 28, 28); add the channel axis."""
    return dataset.data.unsqueeze(1).contiguous(), dataset.targets.to(torch.int64)


def cifar_arrays(dataset: object) -> Arrays:
    """CIFAR ``.data`` is uint8 (N, 32, 32, 3) HWC; make it (N, 3, 32, 32)."""
    images = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))
    return torch.from_numpy(images), torch.tensor(dataset.targets, dtype=torch.int64)


def svhn_arrays(dataset: object) -> Arrays:
    """SVHN ``.data`` is already (N, 3, 32, 32); torchvision maps label 10 to digit 0."""
    images = np.ascontiguousarray(dataset.data, dtype=np.uint8)
    return torch.from_numpy(images), torch.from_numpy(dataset.labels.astype(np.int64))


def mnist_files(cls: type, root: Path) -> list[Path]:
    """torchvision reads the unzipped IDX files under ``<root>/<ClassName>/raw/``."""
    raw = root / cls.__name__ / "raw"
    return [raw / os.path.splitext(filename)[0] for filename, _ in cls.resources]


def cifar_files(cls: type, root: Path) -> list[Path]:
    """The pickled batches and the meta file under ``<root>/<base_folder>/``."""
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return [root / cls.base_folder / name for name in names]


def svhn_files(cls: type, root: Path) -> list[Path]:
    """The train and test ``.mat`` files directly in ``<root>``."""
    return [root / cls.split_list[split][1] for split in ("train", "test")]


SOURCES = {
    source.name: source
    for source in (
        TorchvisionSource(
            name="mnist",
            class_name="MNIST",
            augment=False,
            open_split=open_train_flag,
            arrays=mnist_arrays,
            files=mnist_files,
            train_count=60000,
            test_count=10000,
        ),
        TorchvisionSource(
            name="fashion_mnist",
            class_name="FashionMNIST",
            augment=False,
            open_split=open_train_flag,
            arrays=mnist_arrays,
            files=mnist_files,
            train_count=60000,
            test_count=10000,
        ),
        TorchvisionSource(
            name="cifar10",
            class_name="CIFAR10",
            augment=True,
            open_split=open_train_flag,
            arrays=cifar_arrays,
            files=cifar_files,
            train_count=50000,
            test_count=10000,
        ),
        TorchvisionSource(
            name="cifar100",
            class_name="CIFAR100",
            augment=True,
            open_split=open_train_flag,
            arrays=cifar_arrays,
            files=cifar_files,
            train_count=50000,
            test_count=10000,
        ),
        TorchvisionSource(
            name="svhn",
            class_name="SVHN",
            augment=True,
            open_split=open_svhn_split,
            arrays=svhn_arrays,
            files=svhn_files,
            train_count=73257,
            test_count=26032,
        ),
    )
}


def expected_files(name: str, root: Path) -> list[Path]:
    """The files torchvision needs under ``root`` for dataset ``name``."""
    source = SOURCES[name]
    return source.files(source.cls, Path(root))


def how_to_get(source: TorchvisionSource, root: Path) -> str:
    return (
        f"To get them, run once with download: true (load_dataset({source.name!r}, "
        f"download=True)) on a machine with internet access (torchvision fetches them from "
        f"{source.url} and checks their md5), or copy the files to the paths above."
    )


def open_splits(source: TorchvisionSource, root: Path, download: bool) -> tuple[object, object]:
    """torchvision's train and test datasets; any failure becomes a DatasetNotFoundError."""
    expected = source.files(source.cls, root)
    missing = [path for path in expected if not path.is_file()]
    if missing and not download:
        raise DatasetNotFoundError(source.name, root, expected, missing, how_to_get(source, root))
    try:
        return tuple(
            source.open_split(source.cls, root, train, download) for train in (True, False)
        )
    except (RuntimeError, OSError) as error:
        if isinstance(error, DatasetNotFoundError):
            raise
        missing = [path for path in expected if not path.is_file()]
        how = f"torchvision said: {error}\n{how_to_get(source, root)}"
        if not missing:
            how = (
                "Present files failing torchvision's md5 check are corrupt or partial: "
                f"delete them and fetch them again.\n{how}"
            )
        raise DatasetNotFoundError(source.name, root, expected, missing, how) from error


def torchvision_splits(
    name: str,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
) -> DatasetSplits:
    source = SOURCES[name]
    train, test = open_splits(source, Path(data_dir), download)
    return splits_from_pools(
        name,
        source.arrays(train),
        source.arrays(test),
        val_size=val_size,
        split_seed=split_seed,
        num_classes=source.num_classes,
        augment=source.augment,
    )


def stand_in_splits(name: str, *, val_size: int | float, split_seed: int) -> DatasetSplits:
    """Random uint8 images with the shapes, counts, classes and augmentation of dataset
    ``name``, split exactly as the real files would be: for measuring the cost of a cell
    (:mod:`normstudy.estimate`) where the files are not at hand. Never for results."""
    source = SOURCES[name]
    generator = torch.Generator().manual_seed(0)

    def pool(count: int) -> Arrays:
        shape = (count, *source.image_shape)
        images = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        return images, torch.arange(count, dtype=torch.int64) % source.num_classes

    return splits_from_pools(
        name,
        pool(source.train_count),
        pool(source.test_count),
        val_size=val_size,
        split_seed=split_seed,
        num_classes=source.num_classes,
        augment=source.augment,
    )


def load_torchvision(
    name: str, *, data_dir: Path, download: bool, val_size: int | float, split_seed: int
) -> DatasetSplits:
    """The official train and test splits of a torchvision dataset (its catalog entry has
    the shapes and classes). MNIST and Fashion-MNIST: 60k/10k 28x28 grey, no
    augmentation. CIFAR-10 and CIFAR-100 (fine labels): 50k/10k 32x32 RGB, Frankle et al.
    2020's translation + flip augmentation, as SVHN's cropped digits (73k/26k; the
    ``extra`` split is not used; torchvision maps label 10 to digit 0)."""
    return torchvision_splits(name, data_dir, download, val_size, split_seed)


for _name in SOURCES:
    LOADERS.add(_name, functools.partial(load_torchvision, _name))
