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
}
EMBEDDED_DATASETS = ("digits", "mnist5k", "gaussian_noise")

MODELS = {"mlp": "dense", "lstm": "dense", "resnet": "conv", "wrn": "conv", "vgg": "conv"}
"""Model -> the kind of layer its normalizers follow."""

IMAGE_MODELS = ("resnet", "wrn", "vgg", "lstm")

NORMALIZERS = {
    "batch": ("conv", "dense"),
    "batch_train": ("conv", "dense"),
    "batch_noisy": ("conv", "dense"),
    "layer": ("conv", "dense"),
    "group": ("conv", "dense"),
    "instance": ("conv",),
    "weight": ("conv", "dense"),
    "none": ("conv", "dense"),
    "bmlv": ("conv", "dense"),
    "lmbv": ("conv", "dense"),
    "prelayer": ("conv", "dense"),
    "regnorm": ("conv", "dense"),
    "preregnorm": ("conv", "dense"),
    "lp": ("conv", "dense"),
}

FREEZE_POLICIES = ("all", "all-but-norm", "beta", "gamma", "head", "norm", "norm+head")

PARAMETER_ROLES = ("norm_gamma", "norm_beta", "weight", "bias", "head")
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


def compatibility_error(dataset: str, model: str, norm: str) -> str | None:
    """Why this dataset/model/normalizer combination cannot be built, or None."""
    if DATASETS.get(dataset) == "vector" and model in IMAGE_MODELS:
        return f"model {model!r} needs image inputs but dataset {dataset!r} is a vector dataset"
    kind = MODELS.get(model)
    kinds = NORMALIZERS.get(norm, ())
    if kind and kinds and kind not in kinds:
        return (
            f"normalizer {norm!r} cannot follow the {kind} layers of model {model!r} "
            f"(it supports: {', '.join(kinds)})"
        )
    return None
