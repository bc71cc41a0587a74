"""What a cell's config must satisfy across the families: names that exist, options
that fit, and combinations that can be built. Checked for every cell while planning,
so a study that cannot run fails before any job starts. Imports no torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from normstudy.catalog.datasets import DATASETS
from normstudy.catalog.freeze import FREEZE_POLICIES, random_freeze_error
from normstudy.catalog.models import MODELS, compatibility_error, init_from_error
from normstudy.catalog.normalizers import NORMALIZERS
from normstudy.catalog.probes import PROBES

FAMILIES = {
    "dataset": DATASETS,
    "model": MODELS,
    "norm": NORMALIZERS,
    "freeze": FREEZE_POLICIES,
}
"""Config key -> the catalog its value names."""

NORMALIZER_ONLY_POLICIES = ("norm", "gamma", "beta", "random")
"""Policies that train only gamma and beta (or as many weights): they need a normalizer
that has them."""


def cell_problems(config: Mapping[str, Any]) -> list[str]:
    """Names that do not exist and combinations that cannot be built."""
    errors = [
        f"{key} {config[key]!r} is unknown; valid: {', '.join(sorted(family))}"
        for key, family in FAMILIES.items()
        if config[key] not in family
    ]
    if errors:
        return errors
    dataset, model, norm = DATASETS[config["dataset"]], MODELS[config["model"]], config["norm"]
    errors += filter(
        None,
        [model.depth_error(config["depth"]), compatibility_error(dataset.name, model.name, norm)],
    )
    errors += NORMALIZERS[norm].option_problems("normalizer", config["norm_options"])
    errors += dataset.option_problems("dataset", config["dataset_options"])
    errors += model.option_problems("model", config["model_options"])
    errors += probe_problems(config["probes"])
    errors += token_probe_problems(dataset.name, config["probes"])
    if not NORMALIZERS[norm].affine and config["freeze"] in NORMALIZER_ONLY_POLICIES:
        errors.append(
            f"freeze {config['freeze']!r} trains only normalizer parameters (or as many "
            f"weights) but norm is {norm!r}, which has none"
        )
    errors += filter(
        None,
        [
            random_freeze_error(model.name, norm, config["freeze"]),
            init_from_error(config["init_from"], model.name, norm),
        ],
    )
    return errors


def probe_name(entry: object) -> object:
    """The probe a ``probes:`` entry names (a name, or a mapping with ``name``)."""
    return entry.get("name") if isinstance(entry, Mapping) else entry


def probe_problems(probes: object) -> list[str]:
    """Unknown probe names and bad options of the config's ``probes:`` list (the rest of
    an entry, its schedule, is checked by the config schema and where probes are built)."""
    if not isinstance(probes, list):
        return []
    errors = []
    for index, entry in enumerate(probes):
        name = probe_name(entry)
        if not isinstance(name, str):
            continue
        if name not in PROBES:
            errors.append(f"probes[{index}]: {PROBES.unknown(name)}")
        elif isinstance(entry, Mapping) and entry.get("options") is not None:
            problems = PROBES[name].option_problems("probe", entry["options"])
            errors += [f"probes[{index}]: {problem}" for problem in problems]
    return errors


def token_probe_problems(dataset: str, probes: object) -> list[str]:
    """Probes of ``probes`` that cannot run on the token inputs of a text ``dataset``."""
    if DATASETS[dataset].inputs != "tokens" or not isinstance(probes, list):
        return []
    return [
        f"probe {name!r} needs float inputs (it differentiates by or adds noise to them); "
        f"dataset {dataset!r} gives token ids"
        for name in map(probe_name, probes)
        if name in PROBES and PROBES[name].float_inputs
    ]
