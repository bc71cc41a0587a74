"""The resolved configuration of one training cell: defaults, schema and validation.

Imports no torch: the workflow (``normstudy.grid``) validates every cell of a study
with this module while Snakemake parses the Snakefile. Registry names (datasets,
models, normalizers, freeze policies) are checked by :func:`normstudy.build.check_names`
where torch is available.

The defaults are the schedule of Frankle et al. (2020, §3 and appendix; also G42 2021
§3.1): SGD with momentum 0.9, lr 0.1 divided by 10 at 50% and 75% of training
(epochs 80 and 120 of 160), batch 128, weight decay 1e-4 on all parameters, He-normal
weights, gamma ~ U[0, 1], beta = 0.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from normstudy.catalog import INIT_FROM
from normstudy.inputcheck import number_errors

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "dataset_options": {},
    "val_size": 0.1,
    "split_seed": 0,
    "train_subset": None,
    "augment": True,
    "model": "mlp",
    "depth": None,
    "width": None,
    "skip": True,
    "norm_every": 1,
    "model_options": {},
    "norm": "batch",
    "norm_options": {},
    "reg_strength": 0.1,
    "gamma_init": "uniform",
    "init_from": None,
    "freeze": "all",
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "adam_betas": [0.9, 0.999],
    "weight_decay": 1e-4,
    "weight_decay_norm": True,
    "schedule": "multistep",
    "milestones": [0.5, 0.75],
    "lr_decay": 0.1,
    "warmup_epochs": 0.0,
    "batch_size": 128,
    "eval_batch_size": None,
    "epochs": 10,
    "steps": None,
    "full_batch": False,
    "shuffle": True,
    "seed": 0,
    "amp": False,
    "channels_last": False,
    "compile": False,
    "divergence_threshold": 1e6,
    "checkpoint_every": 1,
    "probes": [],
}

_POSITIVE_INT = {"type": "integer", "minimum": 1}
_OPTIONAL_POSITIVE_INT = {"type": ["integer", "null"], "minimum": 1}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_+.-]+$"}
_OPTIONS = {"type": "object"}

CELL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "normstudy cell config",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dataset": _NAME,
        "dataset_options": _OPTIONS,
        "val_size": {"type": "number", "minimum": 0},
        "split_seed": {"type": "integer", "minimum": 0},
        "train_subset": _OPTIONAL_POSITIVE_INT,
        "augment": {"type": "boolean"},
        "model": _NAME,
        "depth": _OPTIONAL_POSITIVE_INT,
        "width": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "skip": {"type": "boolean"},
        "norm_every": {"type": "integer", "minimum": 0},
        "model_options": _OPTIONS,
        "norm": _NAME,
        "norm_options": _OPTIONS,
        "reg_strength": {"type": "number", "minimum": 0},
        "gamma_init": {"enum": ["ones", "uniform"]},
        "init_from": {"enum": [None, *INIT_FROM]},
        "freeze": _NAME,
        "optimizer": {"enum": ["sgd", "adam"]},
        "lr": {"type": "number", "exclusiveMinimum": 0},
        "momentum": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "nesterov": {"type": "boolean"},
        "adam_betas": {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "minItems": 2,
            "maxItems": 2,
        },
        "weight_decay": {"type": "number", "minimum": 0},
        "weight_decay_norm": {"type": "boolean"},
        "schedule": {"enum": ["multistep", "cosine", "constant"]},
        "milestones": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        },
        "lr_decay": {"type": "number", "exclusiveMinimum": 0},
        "warmup_epochs": {"type": "number", "minimum": 0},
        "batch_size": _POSITIVE_INT,
        "eval_batch_size": _OPTIONAL_POSITIVE_INT,
        "epochs": {"type": "integer", "minimum": 0},
        "steps": _OPTIONAL_POSITIVE_INT,
        "full_batch": {"type": "boolean"},
        "shuffle": {"type": "boolean"},
        "seed": {"type": "integer", "minimum": 0},
        "amp": {"type": "boolean"},
        "channels_last": {"type": "boolean"},
        "compile": {"type": "boolean"},
        "divergence_threshold": {"type": "number", "exclusiveMinimum": 0},
        "checkpoint_every": {"type": "integer", "minimum": 0},
        "probes": {"type": "array"},
    },
}


class ConfigError(ValueError):
    """A cell config that cannot run; the message names the key and the valid values."""


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        valid = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(valid))
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unknown config key(s) {', '.join(hints)}; valid keys: {', '.join(valid)}"
    if error.validator == "enum":
        return f"config key {key!r} = {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern":
        return (
            f"config key {key!r} = {error.instance!r} may only contain letters, digits and _ + . -"
        )
    return f"config key {key!r} = {error.instance!r}: {error.message}"


_VALIDATOR = jsonschema.Draft202012Validator(CELL_SCHEMA)


def validate_cell_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every schema violation of a resolved config."""
    bad_numbers = number_errors(dict(config), prefix="config ")
    if bad_numbers:
        raise ConfigError("; ".join(bad_numbers))
    validator = _VALIDATOR
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    if config["schedule"] == "multistep" and list(config["milestones"]) != sorted(
        config["milestones"]
    ):
        raise ConfigError(f"config key 'milestones' = {config['milestones']} must be increasing")


def resolve_cell_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``overrides``, then validated."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"a cell config must be a mapping, got {type(overrides).__name__}")
    resolved = copy.deepcopy(DEFAULTS)
    resolved.update(copy.deepcopy(dict(overrides)))
    validate_cell_config(resolved)
    return resolved


def canonical_json(config: Mapping[str, Any]) -> str:
    """A byte-stable serialisation (sorted keys, no whitespace) used for hashing and comparing."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
