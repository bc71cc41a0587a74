"""The dataset registry: name -> loader function.

A loader is called as ``loader(data_dir=..., download=..., val_size=..., split_seed=...,
**options)``; its other keyword-only parameters are the dataset's options, with their
defaults, so adding a dataset is one function plus one ``register`` line.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

from normstudy.data.base import DatasetSplits
from normstudy.registry import Registry

Loader = Callable[..., DatasetSplits]
DATASETS: Registry[Loader] = Registry("dataset")
COMMON_ARGUMENTS = ("data_dir", "download", "val_size", "split_seed")
DATA_DIR_VARIABLE = "NORMSTUDY_DATA_DIR"


def dataset_options(name: str) -> dict[str, object]:
    """The options dataset ``name`` accepts, with their defaults."""
    parameters = inspect.signature(DATASETS.get(name)).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in COMMON_ARGUMENTS
    }


def check_dataset_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """Defaults merged with ``options``; unknown option names fail with the valid ones."""
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "none"
        raise ValueError(
            f"dataset {name!r} has no option(s) {', '.join(unknown)}; valid options: {listed}"
        )
    problems = [
        problem
        for option, value in options.items()
        if (problem := option_type_problem(name, option, value))
    ]
    if problems:
        raise ValueError("; ".join(problems))
    return {**valid, **options}


def option_type_problem(name: str, option: str, value: object) -> str | None:
    """Why ``value`` has the wrong type for option ``option`` of dataset ``name`` (from
    the loader's annotation, e.g. ``int | None``), or None."""
    from normstudy.names import type_problem

    parameter = inspect.signature(DATASETS.get(name)).parameters[option]
    problem = type_problem(f"dataset {name!r} option {option!r}", value, str(parameter.annotation))
    return None if problem is None else f"{problem} (default {parameter.default!r})"


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
    loader = DATASETS.get(name)
    merged = check_dataset_options(name, options)
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    return loader(
        data_dir=directory,
        download=download,
        val_size=val_size,
        split_seed=split_seed,
        **merged,
    )
