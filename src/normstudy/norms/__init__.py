"""Normalizers: one class per catalog entry, one module per family; see
:mod:`normstudy.norms.base`.

Importing this package imports every family module, each of which registers its
classes in :data:`NORM_CLASSES` (``none`` maps to None: no normalizer). Their options,
layer kinds and labels are in the catalog, :data:`normstudy.catalog.NORMALIZERS`.
"""

from normstudy.norms import none  # noqa: F401  (registers "none")
from normstudy.norms.base import Normalizer, NormedLayer, NormFactory, collect_regularizers
from normstudy.norms.batch import BatchNorm, BatchTrainNorm
from normstudy.norms.group import GroupNorm
from normstudy.norms.instance import InstanceNorm
from normstudy.norms.layer import LayerNorm
from normstudy.norms.lp import LpNorm
from normstudy.norms.noisy import NoisyBatchNorm, NoisyIdentity
from normstudy.norms.prelayer import PreLayerNorm
from normstudy.norms.registry import NORM_CLASSES, build_norm, make_norm_factory, register_norm
from normstudy.norms.regnorm import PreRegNorm, RegNorm
from normstudy.norms.variants import BatchMeanLayerVar, LayerMeanBatchVar
from normstudy.norms.weight import WeightNorm

__all__ = [
    "NORM_CLASSES",
    "BatchMeanLayerVar",
    "BatchNorm",
    "BatchTrainNorm",
    "GroupNorm",
    "InstanceNorm",
    "LayerMeanBatchVar",
    "LayerNorm",
    "LpNorm",
    "NoisyBatchNorm",
    "NoisyIdentity",
    "NormFactory",
    "NormedLayer",
    "Normalizer",
    "PreLayerNorm",
    "PreRegNorm",
    "RegNorm",
    "WeightNorm",
    "build_norm",
    "collect_regularizers",
    "make_norm_factory",
    "register_norm",
]
