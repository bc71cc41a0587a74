"""One torch-free catalog per family: each entry holds that thing's facts once.

A family's catalog (:mod:`.normalizers`, :mod:`.datasets`, :mod:`.models`,
:mod:`.freeze`, :mod:`.probes`; the figures' is :mod:`normstudy.figures.catalog`) maps a
name to an entry with its options (defaults, types and checks, :mod:`.options`), its
shapes and sizes, the layer kinds it supports, its display label, colour and order.
The planner validates studies against it while Snakemake parses the workflow, the job
resources read its sizes, the figures its labels and colours, and the torch builders
(``normstudy.norms``, ``normstudy.data``, ...) register one builder per entry and take
their options from it. Adding a normalizer, dataset, model, probe or figure is one
module plus one entry here. Imports no torch.
"""

from normstudy.catalog.base import Catalog, Entry, UnknownNameError
from normstudy.catalog.datasets import DATASETS, DatasetEntry
from normstudy.catalog.freeze import FREEZE_POLICIES, PARAMETER_ROLES, FreezePolicy, Role
from normstudy.catalog.models import INIT_FROM, MODELS, InitFrom, ModelEntry
from normstudy.catalog.normalizers import NORMALIZERS, NormalizerEntry
from normstudy.catalog.options import Option, option_problems, resolve_options
from normstudy.catalog.probes import PROBES, ProbeDefinition

__all__ = [
    "DATASETS",
    "FREEZE_POLICIES",
    "INIT_FROM",
    "MODELS",
    "NORMALIZERS",
    "PARAMETER_ROLES",
    "PROBES",
    "Catalog",
    "DatasetEntry",
    "Entry",
    "FreezePolicy",
    "InitFrom",
    "ModelEntry",
    "NormalizerEntry",
    "Option",
    "ProbeDefinition",
    "Role",
    "UnknownNameError",
    "option_problems",
    "resolve_options",
]
