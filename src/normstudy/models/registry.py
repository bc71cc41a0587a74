"""The model builders: name -> :class:`ModelSpec` (a builder and its catalog entry).

A builder is called with keyword arguments ``input_shape, num_classes, norm, depth, width,
norm_every, skip`` and its own options; :func:`build_model` fills the defaults, checks the
options and initialises the result (:mod:`normstudy.models.init`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from normstudy.catalog import DATASETS, MODELS, ModelEntry
from normstudy.models.init import check_gamma_init, initialize
from normstudy.norms.base import NormFactory
from normstudy.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """A model builder and its catalog entry (:data:`normstudy.catalog.MODELS`: default
    depth and width, options, the inputs it reads). A ``tokens`` model reads token ids
    of a text dataset and is also given the dataset's ``vocab_size`` and ``embeddings``
    (its pre-trained vectors, or None)."""

    build: Callable[..., nn.Module]
    entry: ModelEntry

    @property
    def default_depth(self) -> int:
        return self.entry.depth

    @property
    def default_width(self) -> float:
        return self.entry.width

    @property
    def tokens(self) -> bool:
        return "tokens" in self.entry.reads

    def __call__(self, **kwargs: object) -> nn.Module:
        return self.build(**kwargs)


BUILDERS: Registry[ModelSpec] = Registry(MODELS)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder (usually the model class) of catalog entry ``name``."""

    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        BUILDERS.add(name, ModelSpec(build, MODELS[name]))
        return build

    return decorator


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
    if spec.tokens and vocab_size is None:
        valid = ", ".join(sorted(DATASETS.where(inputs="tokens")))
        raise ValueError(f"model {name!r} needs a text (token) dataset: {valid}")
    if not spec.tokens and vocab_size is not None:
        valid = ", ".join(sorted(m for m in BUILDERS if BUILDERS.get(m).tokens))
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
    spec = BUILDERS.get(name)
    gamma_init = check_gamma_init(gamma_init)
    merged = spec.entry.resolve("model", options)
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
