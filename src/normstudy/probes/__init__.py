"""Probes: measurements taken inside a cell, one class per catalog entry, one module per
family (their options: :data:`normstudy.catalog.PROBES`).

Importing this package imports every family module, each of which registers its probes
in :data:`PROBE_CLASSES`: ``grad_norms`` (G42), ``norm_params`` (Frankle, Torri), ``norms``
(Morwani), ``hessian`` and ``propagation`` and ``grad_confusion`` ("Is Batch Norm
unique?"), ``ics`` and ``smoothness`` (Santurkar et al.). See :mod:`normstudy.probes.base`
for the contract and :mod:`normstudy.probes.schedule` for the ``probes:`` config list.
"""

from normstudy.probes import (  # noqa: F401  (register the probes)
    grad_confusion,
    grad_norms,
    hessian,
    landscape,
    norm_params,
    norms,
    propagation,
)
from normstudy.probes.base import (
    Probe,
    ProbeContext,
    ProbeFailure,
    Record,
    isolated,
    layers,
    run_probe,
)
from normstudy.probes.registry import PROBE_CLASSES, build_probe, register_probe
from normstudy.probes.schedule import (
    PHASES,
    ProbeEntry,
    parse_probe_entries,
    samples_needed,
)
from normstudy.spectral import slq_density, slq_from_values

__all__ = [
    "PHASES",
    "PROBE_CLASSES",
    "Probe",
    "ProbeContext",
    "ProbeEntry",
    "ProbeFailure",
    "Record",
    "build_probe",
    "isolated",
    "layers",
    "parse_probe_entries",
    "register_probe",
    "run_probe",
    "samples_needed",
    "slq_density",
    "slq_from_values",
]
