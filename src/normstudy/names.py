"""Registry names and model rules without torch, for validating studies at parse time.

Snakemake parses the workflow in every job, so :mod:`normstudy.grid` must not import
torch; it checks studies against these lists instead. ``tests/test_names.py`` proves
they equal the torch-side registries and agree with the model builders, so they cannot
drift apart.
"""

from __future__ import annotations

DATASETS = {
    "digits": "image",
    "mnist5k": "image",
    "gaussian_noise": "vector",
    "mnist": "image",
    "fashion_mnist": "image",
    "cifar10": "image",
    "cifar100": "image",
    "svhn": "image",
    "synthetic_sentiment": "tokens",
    "sentiment140": "tokens",
}
"""Dataset -> the kind of its inputs: image, vector, or tokens (token ids of texts)."""
EMBEDDED_DATASETS = ("digits", "mnist5k", "gaussian_noise", "synthetic_sentiment")

MODELS = {
    "mlp": "dense",
    "lstm": "dense",
    "lstm_text": "dense",
    "resnet": "conv",
    "wrn": "conv",
    "vgg": "conv",
}
"""Model -> the kind of layer its normalizers follow."""

IMAGE_MODELS = ("resnet", "wrn", "vgg", "lstm")
TEXT_MODELS = ("lstm_text",)
"""Models that read token ids (``tokens`` in the model registry); only they take text."""

NORMALIZERS = {
    "batch": ("conv", "dense"),
    "batch_train": ("conv", "dense"),
    "batch_noisy": ("conv", "dense"),
    "layer": ("conv", "dense"),
    "group": ("conv", "dense"),
    "instance": ("conv",),
    "weight": ("conv", "dense"),
    "none": ("conv", "dense"),
    "noisy_none": ("conv", "dense"),
    "bmlv": ("conv", "dense"),
    "lmbv": ("conv", "dense"),
    "prelayer": ("conv", "dense"),
    "regnorm": ("conv", "dense"),
    "preregnorm": ("conv", "dense"),
    "lp": ("conv", "dense"),
}

WITHOUT_GAMMA_BETA = ("none", "noisy_none")
"""Normalizers with no gamma and beta: policies that train only those cannot apply."""

INIT_FROM = {"bn_equivalent": ("mlp",)}
"""``init_from`` value -> the models it is defined for (all with ``norm: none``):
``bn_equivalent`` is Morwani 2020 §3's equivalent point, folded for dense layers
(:mod:`normstudy.models.equivalent`)."""


def init_from_error(init_from: object, model: str, norm: str) -> str | None:
    """Why ``init_from`` cannot start this model and normalizer, or None."""
    if init_from is None:
        return None
    if init_from not in INIT_FROM:
        return f"init_from {init_from!r} is unknown; valid: null, {', '.join(sorted(INIT_FROM))}"
    if norm != "none":
        return (
            f"init_from {init_from!r} starts a network without normalization from its Batch "
            f"Norm twin; it needs norm 'none', not {norm!r}"
        )
    models = INIT_FROM[init_from]
    if model not in models:
        valid = ", ".join(models)
        return f"init_from {init_from!r} is not defined for model {model!r}; valid: {valid}"
    return None


FREEZE_POLICIES = (
    "all",
    "all-but-norm",
    "beta",
    "gamma",
    "head",
    "norm",
    "norm+head",
    "random",
)

PARAMETER_ROLES = ("norm_gamma", "norm_beta", "weight", "bias", "head", "random_subset")
"""The roles :mod:`normstudy.freeze` assigns to parameters, in its order (the tables'
``params_<role>`` columns; the aggregation reads them without importing torch)."""


def depth_error(model: str, depth: object) -> str | None:
    """Why ``depth`` is invalid for ``model`` (the rule, with examples), or None if valid."""
    if depth is None:
        return None
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        return f"{model} depth must be a positive integer; got {depth!r}"
    if model == "resnet" and (depth < 8 or (depth - 2) % 6):
        return (
            f"resnet depth must be 6n+2 with n >= 1 (e.g. 14, 20, 32, 56, 110, 218, 434, 866); "
            f"got {depth}"
        )
    if model == "wrn" and (depth < 8 or (depth - 2) % 6 not in (0, 2)):
        return f"wrn depth must be 6n+2 (e.g. 26) or 6n+4 (e.g. 28) with n >= 1; got {depth}"
    if model == "vgg" and depth < 6:
        return f"vgg depth must be >= 6 (one conv per stage for 5 stages + head); got {depth}"
    return None


RANDOM_FREEZE_EXCLUDED = {"model": ("lstm",), "norm": ("weight",)}
"""Where freeze ``random`` cannot match BN-only's count: the LSTM's state norm follows
no weight layer, and Weight Norm already reparameterises the weights it would choose
from (:func:`normstudy.freeze.select_random_entries`)."""


def random_freeze_error(model: str, norm: str, freeze: str) -> str | None:
    """Why freeze ``random`` cannot run with this model and normalizer, or None."""
    if freeze != "random":
        return None
    for key, value in (("model", model), ("norm", norm)):
        if value in RANDOM_FREEZE_EXCLUDED[key]:
            valid = sorted(
                set(MODELS if key == "model" else NORMALIZERS)
                - set(RANDOM_FREEZE_EXCLUDED[key])
                - set(WITHOUT_GAMMA_BETA)
            )
            return (
                f"freeze 'random' is not defined for {key} {value!r}; valid {key}s: "
                f"{', '.join(valid)}"
            )
    return None


def compatibility_error(dataset: str, model: str, norm: str) -> str | None:
    """Why this dataset/model/normalizer combination cannot be built, or None."""
    inputs = DATASETS.get(dataset)
    if inputs == "vector" and model in IMAGE_MODELS:
        return f"model {model!r} needs image inputs but dataset {dataset!r} is a vector dataset"
    if inputs == "tokens" and model in MODELS and model not in TEXT_MODELS:
        return (
            f"model {model!r} cannot read dataset {dataset!r} (token ids of texts); "
            f"text models: {', '.join(TEXT_MODELS)}"
        )
    if inputs and inputs != "tokens" and model in TEXT_MODELS:
        text = sorted(name for name, kind in DATASETS.items() if kind == "tokens")
        return (
            f"model {model!r} needs a text (token) dataset, not the {inputs} dataset "
            f"{dataset!r}; text datasets: {', '.join(text)}"
        )
    kind = MODELS.get(model)
    kinds = NORMALIZERS.get(norm, ())
    if kind and kinds and kind not in kinds:
        return (
            f"normalizer {norm!r} cannot follow the {kind} layers of model {model!r} "
            f"(it supports: {', '.join(kinds)})"
        )
    return None


DATASET_OPTIONS: dict[str, dict[str, str]] = {
    **{
        name: {"train_size": "int | None"}
        for name in ("digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn")
    },
    "sentiment140": {
        "pool_size": "int",
        "test_size": "int",
        "min_count": "int",
        "max_length": "int",
        "glove": "str | None",
    },
    "synthetic_sentiment": {
        "n": "int",
        "neutral": "int",
        "min_length": "int",
        "max_length": "int",
        "min_count": "int",
        "data_seed": "int",
    },
    "gaussian_noise": {
        "d": "int",
        "d_useful": "int",
        "classes": "int",
        "n_per_class": "int",
        "n_val_per_class": "int",
        "n_test_per_class": "int",
        "signal": "float",
        "spread": "float",
        "data_seed": "int",
    },
}
"""Dataset -> option -> its type as annotated on the loader (``tests/test_names.py``)."""

MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "lstm": (),
    "lstm_text": ("embedding_dim",),
    "mlp": (),
    "resnet": ("shortcut",),
    "vgg": ("residual",),
    "wrn": ("shortcut",),
}

PROBE_OPTIONS: dict[str, tuple[str, ...]] = {
    "grad_confusion": ("batch_size", "n_batches", "parameters"),
    "grad_norms": ("batch_size", "parameters"),
    "hessian": ("n_samples", "mode", "k", "tol", "maxiter", "n_vectors", "lanczos_steps"),
    "ics": ("batch_size",),
    "norm_params": ("bins", "hist_limit", "thresholds", "max_values", "per_layer_hist"),
    "norms": ("batch_size",),
    "propagation": ("batch_size", "noise", "mode"),
    "smoothness": ("batch_size", "step_factors"),
}

_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "None": "null"}


def type_problem(what: str, value: object, annotation: str) -> str | None:
    """Why ``value`` does not fit ``annotation`` (``"int"``, ``"float"``, ``"int | None"``,
    ...), naming ``what``; None if it fits or the annotation is not one of these."""
    parts = [part.strip() for part in annotation.split("|")]
    if value is None and "None" in parts:
        return None
    allowed = [kind for part in parts for kind in _TYPES.get(part, ())]
    if not allowed:
        return None
    fits = isinstance(value, tuple(allowed)) and (bool in allowed or not isinstance(value, bool))
    if fits:
        return None
    wanted = " or ".join(_WORDS.get(part, f"a {part}") for part in parts)
    return f"{what} = {value!r} must be {wanted}"


def options_errors(kind: str, name: str, options: object, valid: dict | tuple) -> list[str]:
    if not isinstance(options, dict):
        return [f"{kind} {name!r}: its options must be a mapping; got {options!r}"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "none"
        return [f"{kind} {name!r} has no option(s) {', '.join(unknown)}; valid options: {listed}"]
    return []


def dataset_options_errors(dataset: str, options: object) -> list[str]:
    """Unknown options of ``dataset`` and options of the wrong type."""
    valid = DATASET_OPTIONS.get(dataset)
    if valid is None:
        return []
    errors = options_errors("dataset", dataset, options, valid)
    if errors:
        return errors
    for option, value in options.items():
        problem = type_problem(f"dataset {dataset!r} option {option!r}", value, valid[option])
        if problem:
            errors.append(problem)
    return errors


def model_options_errors(model: str, options: object) -> list[str]:
    valid = MODEL_OPTIONS.get(model)
    return [] if valid is None else options_errors("model", model, options, valid)


FLOAT_INPUT_PROBES = ("norms", "propagation")
"""Probes that differentiate by or perturb the inputs themselves, so need float inputs:
token ids of a text dataset are indices, neither differentiable nor noisy."""


def token_probe_errors(dataset: str, probes: object) -> list[str]:
    """Probes of ``probes`` that cannot run on the token inputs of a text ``dataset``."""
    if DATASETS.get(dataset) != "tokens" or not isinstance(probes, list):
        return []
    used = [
        entry if isinstance(entry, str) else entry.get("name") if isinstance(entry, dict) else None
        for entry in probes
    ]
    return [
        f"probe {name!r} needs float inputs (it differentiates by or adds noise to them); "
        f"dataset {dataset!r} gives token ids"
        for name in used
        if name in FLOAT_INPUT_PROBES
    ]


def probe_errors(probes: object) -> list[str]:
    """Unknown probe names and options of the config's ``probes:`` list (the rest of an
    entry is checked where the probes are built)."""
    if not isinstance(probes, list):
        return []
    errors = []
    for index, entry in enumerate(probes):
        name = (
            entry
            if isinstance(entry, str)
            else entry.get("name")
            if isinstance(entry, dict)
            else None
        )
        if not isinstance(name, str):
            continue
        if name not in PROBE_OPTIONS:
            valid = ", ".join(sorted(PROBE_OPTIONS))
            errors.append(f"probes[{index}]: unknown probe {name!r}; valid probes: {valid}")
        elif isinstance(entry, dict) and entry.get("options") is not None:
            for problem in options_errors("probe", name, entry["options"], PROBE_OPTIONS[name]):
                errors.append(f"probes[{index}]: {problem}")
    return errors
