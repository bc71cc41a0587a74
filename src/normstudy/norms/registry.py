"""The normalizer classes: name -> Normalizer subclass (or None for ``none``), one per
entry of the normalizer catalog (:data:`normstudy.catalog.NORMALIZERS`), which holds
each one's options, layer kinds and whether it has gamma and beta."""

from __future__ import annotations

import functools
from collections.abc import Callable

from normstudy.catalog import NORMALIZERS
from normstudy.norms.base import KINDS, Normalizer, NormFactory
from normstudy.registry import Registry

NORM_CLASSES: Registry[type[Normalizer] | None] = Registry(NORMALIZERS)


def register_norm(name: str) -> Callable[[type[Normalizer]], type[Normalizer]]:
    """Class decorator: the class of catalog entry ``name``, which gives it its layer
    kinds (``supports``) and whether it ends with gamma and beta (``has_affine``)."""

    def decorator(cls: type[Normalizer]) -> type[Normalizer]:
        entry = NORMALIZERS[name]
        cls.supports = frozenset(entry.layers)
        cls.has_affine = entry.affine
        return NORM_CLASSES.register(name)(cls)

    return decorator


def check_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """The catalog's defaults merged with ``options``, checked; unknown option names and
    bad values fail naming the valid ones."""
    return NORMALIZERS[name].resolve("normalizer", options)


def build_norm(name: str, num_features: int, kind: str, **options: object) -> Normalizer | None:
    """The normalizer ``name`` for a layer with ``num_features`` channels of ``kind``."""
    cls = NORM_CLASSES.get(name)
    merged = check_options(name, options)
    if cls is None:
        return None
    if kind not in cls.supports:
        raise ValueError(
            f"normalizer {name!r} cannot normalise {kind} layers "
            f"(it supports: {', '.join(sorted(cls.supports))}; layer kinds: {', '.join(KINDS)})"
        )
    return cls(num_features, kind, **merged)


def make_norm_factory(name: str, **options: object) -> NormFactory:
    """A factory for models; the name and options are checked now, not at first use."""
    NORM_CLASSES.get(name)
    check_options(name, options)
    factory = functools.partial(build_norm, name, **options)
    factory.norm_name = name  # type: ignore[attr-defined]
    return factory
