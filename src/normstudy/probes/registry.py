"""The probe classes: name -> :class:`~normstudy.probes.base.Probe` subclass, one per
entry of the probe catalog (:data:`normstudy.catalog.PROBES`: options, expensive)."""

from __future__ import annotations

from normstudy.catalog import PROBES
from normstudy.probes.base import Probe
from normstudy.registry import Registry

PROBE_CLASSES: Registry[type[Probe]] = Registry(PROBES)


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator: register ``cls`` under its ``name``."""
    PROBE_CLASSES.add(cls.name, cls)
    return cls


def build_probe(name: str, **options: object) -> Probe:
    """Probe ``name`` with ``options``; unknown names or options fail listing the valid ones."""
    return PROBE_CLASSES.get(name)(**options)
