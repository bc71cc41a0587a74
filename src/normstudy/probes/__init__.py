"""Probes: measurements taken inside a cell, one registry, one module per family.

Importing this package imports every family module, each of which registers its probes
in :data:`PROBES`: ``grad_norms`` (G42), ``norm_params`` (Frankle, Torri), ``norms``
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
from normstudy.probes.hessian import slq_density, slq_from_values
from normstudy.probes.registry import PROBES, build_probe, probe_options, register_probe
from normstudy.probes.schedule import (
    PHASES,
    ProbeEntry,
    parse_probe_entries,
    samples_needed,
)

__all__ = [
    "PHASES",
    "PROBES",
    "Probe",
    "ProbeContext",
    "ProbeEntry",
    "ProbeFailure",
    "Record",
    "build_probe",
    "isolated",
    "layers",
    "parse_probe_entries",
    "probe_options",
    "register_probe",
    "run_probe",
    "samples_needed",
    "slq_density",
    "slq_from_values",
]
