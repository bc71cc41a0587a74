"""The probe registry: name -> :class:`~normstudy.probes.base.Probe` subclass."""

from __future__ import annotations

from normstudy.probes.base import Probe
from normstudy.registry import Registry

PROBES: Registry[type[Probe]] = Registry("probe")


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: register ``cls`` under its ``name``."""
    PROBES.add(cls.name, cls)
    return cls


def probe_options(name: str) -> dict[str, object]:
    """The options probe ``name`` accepts, with their defaults."""
    return dict(PROBES.get(name).options)


def build_probe(name: str, **options: object) -> Probe:
    """Probe ``name`` with ``options``; unknown names or options fail listing the valid ones."""
    return PROBES.get(name)(**options)
