"""The model registry: name -> :class:`ModelSpec` (a builder plus its options and defaults).

A builder is called with keyword arguments ``input_shape, num_classes, norm, depth, width,
norm_every, skip`` and its own options; :func:`build_model` fills the defaults, checks the
options and initialises the result (:mod:`normstudy.models.init`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from normstudy.models.init import check_gamma_init, initialize
from normstudy.norms.base import NormFactory
from normstudy.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """A model builder with its default depth and width and its options (name -> default).

    A ``tokens`` model reads token ids of a text dataset and is also given the dataset's
    ``vocab_size`` and ``embeddings`` (its pre-trained vectors, or None)."""

    build: Callable[..., nn.Module]
    default_depth: int
    default_width: float
    options: Mapping[str, object] = field(default_factory=dict)
    tokens: bool = False

    def __call__(self, **kwargs: object) -> nn.Module:
        return self.build(**kwargs)


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str,
    *,
    depth: int,
    width: float,
    options: Mapping[str, object] | None = None,
    tokens: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder (usually the model class) under ``name``."""

    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelSpec(build, depth, width, dict(options or {}), tokens))
        return build

    return decorator


def model_options(name: str) -> dict[str, object]:
    """The options model ``name`` accepts, with their defaults."""
    return dict(MODELS.get(name).options)


def check_model_options(name: str, options: Mapping[str, object]) -> dict[str, object]:
    """Defaults merged with ``options``; unknown option names fail with the valid ones."""
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "none"
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; valid options: {listed}"
        )
    return {**valid, **options}


def check_input_shape(input_shape: object) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (no batch dimension)."""
    try:
        shape = tuple(input_shape)  # type: ignore[arg-type]
    except TypeError:
        shape = ()
    if not shape or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive ints without the batch "
            f"dimension, e.g. (3, 32, 32), (28, 28) or (1000,); got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def token_arguments(
    name: str, spec: ModelSpec, vocab_size: int | None, embeddings: torch.Tensor | None
) -> dict[str, object]:
    """The builder's token arguments; a text model without tokens or an image/vector model
    with them fails naming the datasets it needs."""
    from normstudy.names import DATASETS

    if spec.tokens and vocab_size is None:
        valid = ", ".join(sorted(d for d, kind in DATASETS.items() if kind == "tokens"))
        raise ValueError(f"model {name!r} needs a text (token) dataset: {valid}")
    if not spec.tokens and vocab_size is not None:
        valid = ", ".join(sorted(m for m in MODELS if MODELS.get(m).tokens))
        raise ValueError(
            f"model {name!r} cannot read token ids of a text dataset; text models: {valid}"
        )
    if not spec.tokens:
        return {}
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
        raise ValueError(
            f"vocab_size must be an integer >= 3 (pad, oov, a word); got {vocab_size!r}"
        )
    return {"vocab_size": vocab_size, "embeddings": embeddings}


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    norm: NormFactory,
    depth: int | None = None,
    width: float | None = None,
    norm_every: int = 1,
    skip: bool = True,
    gamma_init: str = "ones",
    vocab_size: int | None = None,
    embeddings: torch.Tensor | None = None,
    **options: object,
) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (no batch dim), initialised.

    ``norm(channels, kind)`` builds the normalizer after each normalised layer;
    ``norm_every = k`` keeps one after every k-th layer along depth (0: none);
    ``skip = False`` removes residual connections; ``gamma_init`` is "ones" or "uniform".
    Depth and width default per model (see each model's docstring for their meaning).
    ``vocab_size`` (and optionally ``embeddings``) are given for token inputs, exactly when
    the model is a ``tokens`` model (:class:`ModelSpec`).
    """
    spec = MODELS.get(name)
    gamma_init = check_gamma_init(gamma_init)
    merged = check_model_options(name, options)
    shape = check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
    tokens = token_arguments(name, spec, vocab_size, embeddings)
    if not isinstance(skip, bool):
        raise ValueError(f"skip must be true or false; got {skip!r}")
    try:
        model = spec(
            input_shape=shape,
            num_classes=num_classes,
            norm=norm,
            depth=spec.default_depth if depth is None else depth,
            width=spec.default_width if width is None else width,
            norm_every=norm_every,
            skip=skip,
            **tokens,
            **merged,
        )
    except ValueError as err:
        raise ValueError(f"cannot build model {name!r}: {err}") from err
    return initialize(model, gamma_init)
