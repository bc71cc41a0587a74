"""The normalizer registry: name -> Normalizer subclass (or None for ``none``)."""

from __future__ import annotations

import functools

from normstudy.norms.base import KINDS, Normalizer, NormFactory
from normstudy.registry import Registry

NORMALIZERS: Registry[type[Normalizer] | None] = Registry("normalizer")


def norm_options(name: str) -> dict[str, object]:
    """The options a normalizer accepts, with their defaults."""
    cls = NORMALIZERS.get(name)
    return {} if cls is None else dict(cls.options)


def check_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """Defaults merged with ``options``; unknown option names fail with the valid ones."""
    valid = norm_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "none"
        raise ValueError(
            f"normalizer {name!r} has no option(s) {', '.join(unknown)}; valid options: {listed}"
        )
    return {**valid, **options}


def build_norm(name: str, num_features: int, kind: str, **options: object) -> Normalizer | None:
    """The normalizer ``name`` for a layer with ``num_features`` channels of ``kind``."""
    cls = NORMALIZERS.get(name)
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
    NORMALIZERS.get(name)
    check_options(name, options)
    factory = functools.partial(build_norm, name, **options)
    factory.norm_name = name  # type: ignore[attr-defined]
    return factory
