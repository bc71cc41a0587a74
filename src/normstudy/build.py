"""From a resolved cell config to the objects a training run needs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normstudy.catalog import INIT_FROM, UnknownNameError
from normstudy.catalog.cell_rules import FAMILIES
from normstudy.config import ConfigError
from normstudy.data import DatasetSplits
from normstudy.models import build_model
from normstudy.models.equivalent import INITIALIZATIONS
from normstudy.norms import make_norm_factory


def check_names(config: dict[str, Any]) -> None:
    """Fail with the valid names if any catalog name in ``config`` is unknown."""
    families = {**FAMILIES, "init_from": INIT_FROM}
    for key, family in families.items():
        if key == "init_from" and config.get(key) is None:
            continue
        try:
            family[config[key]]
        except UnknownNameError as error:
            raise ConfigError(f"config key {key!r}: {error}") from None


def model_for(config: dict[str, Any], splits: DatasetSplits) -> nn.Module:
    """The model of ``config`` for the shapes of ``splits`` (initialised with torch's RNG)."""
    sizes = {k: config[k] for k in ("depth", "width") if config[k] is not None}
    if splits.tokens:
        sizes.update(vocab_size=splits.vocab_size, embeddings=splits.embeddings)
    try:
        factory = make_norm_factory(config["norm"], **config["norm_options"])
        return build_model(
            config["model"],
            input_shape=tuple(splits.input_shape),
            num_classes=splits.num_classes,
            norm=factory,
            norm_every=config["norm_every"],
            skip=config["skip"],
            gamma_init=config["gamma_init"],
            **sizes,
            **config["model_options"],
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"cannot build model {config['model']!r} with norm {config['norm']!r} "
            f"for dataset {config['dataset']!r}: {error}"
        ) from error


def set_starting_point(
    config: dict[str, Any], model: nn.Module, splits: DatasetSplits, x: torch.Tensor, seed: int
) -> None:
    """Apply ``init_from`` to the freshly built ``model``: for ``bn_equivalent``, the
    equivalent point (Morwani 2020, §3) on the training inputs ``x`` of the ``norm: batch``
    model that ``seed`` builds, the one a Batch Norm cell of this seed trains."""
    initialize = INITIALIZATIONS.get(config["init_from"])

    def bn_twin() -> nn.Module:
        torch.manual_seed(seed)
        return model_for({**config, "norm": "batch", "norm_options": {}}, splits)

    try:
        initialize(model, bn_twin, x)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config key 'init_from': {error}") from error
