"""The normalizers: layer kinds, options, gamma and beta, label, colour and order.

Each entry is what the torch class (:mod:`normstudy.norms`) of the same name builds;
the class takes its options from here. The order of :data:`NORMALIZERS` is the order
of every legend and table. The papers behind each are cited on the classes
(docs/science.md lists them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from normstudy.catalog.base import Catalog, Entry
from normstudy.catalog.options import Option, at_least, choice, fraction, positive

LAYER_KINDS = ("conv", "dense")
"""What a normalizer can follow: conv layers, (N, C, H, W), or dense ones, (N, C)."""

P_VALUES = (1, 2, 3, math.inf)
REG_UNITS = ("neuron", "channel")
"""RegNorm's batch means: per neuron (channel and position) or per channel."""
REG_REDUCE = ("sum", "mean")
"""How RegNorm reduces the squared batch means: their sum or their mean."""


def parse_p(p: object) -> float:
    """The norm order: 1, 2, 3, or ``math.inf`` (given as ``.inf``, ``"inf"`` or
    ``float('inf')``)."""
    if isinstance(p, str) and p.strip().lower() == "inf":
        return math.inf
    if isinstance(p, (int, float)) and not isinstance(p, bool) and p in P_VALUES:
        return p if math.isinf(p) else int(p)
    raise ValueError("must be 1, 2, 3 or 'inf'")


def eps(default: float = 1e-5) -> Option:
    return Option(default, "float", positive, "added to the variance (or scale) before dividing")


MOMENTUM = Option(0.1, "float", fraction, "weight of the batch in the running statistics")
NOISE_MEAN = Option(
    0.5, "float", at_least(0.0), "the injected shift is drawn from U[-noise_mean, noise_mean]"
)
NOISE_VAR = Option(1.25, "float", at_least(1.0), "the injected scale is drawn from U[1, noise_var]")
REGULARIZER = {
    "eps": eps(),
    "reg_units": Option("neuron", "str", choice(*REG_UNITS), "batch means per neuron or channel"),
    "reg_reduce": Option("mean", "str", choice(*REG_REDUCE), "sum or mean of squared means"),
}


@dataclass(frozen=True)
class NormalizerEntry(Entry):
    """``layers``: the layer kinds it can follow; ``affine``: whether it ends with a
    per-channel gamma and beta (freeze policies that train only those need them);
    ``colour`` and ``dashes`` (a matplotlib line style): how every figure draws it."""

    layers: tuple[str, ...] = LAYER_KINDS
    affine: bool = True
    colour: str = "#000000"
    dashes: str = "-"


NORMALIZERS: Catalog[NormalizerEntry] = Catalog(
    "normalizer",
    [
        NormalizerEntry(
            "batch", "BatchNorm", {"eps": eps(), "momentum": MOMENTUM}, colour="#0072B2"
        ),
        NormalizerEntry(
            "batch_train", "Batch-Train", {"eps": eps()}, colour="#56B4E9", dashes="--"
        ),
        NormalizerEntry(
            "batch_noisy",
            "noisy BatchNorm",
            {"eps": eps(), "momentum": MOMENTUM, "noise_mean": NOISE_MEAN, "noise_var": NOISE_VAR},
            colour="#332288",
            dashes=":",
        ),
        NormalizerEntry("layer", "LayerNorm", {"eps": eps()}, colour="#E69F00"),
        NormalizerEntry(
            "instance", "InstanceNorm", {"eps": eps()}, layers=("conv",), colour="#999933"
        ),
        NormalizerEntry(
            "group",
            "GroupNorm",
            {
                "eps": eps(),
                "groups": Option(8, "int", positive, "channels are split into this many groups"),
            },
            colour="#009E73",
        ),
        NormalizerEntry("weight", "WeightNorm", {"eps": eps(1e-12)}, colour="#663333"),
        NormalizerEntry(
            "lp",
            "Lp norm",
            {
                "eps": eps(),
                "momentum": MOMENTUM,
                "p": Option(2, "any", parse_p, "the norm order: 1, 2, 3 or inf"),
                "centered": Option(True, "bool", None, "subtract the batch mean first"),
            },
            colour="#B8A0E0",
        ),
        NormalizerEntry("bmlv", "BMLV", {"eps": eps(), "momentum": MOMENTUM}, colour="#AA4499"),
        NormalizerEntry("lmbv", "LMBV", {"eps": eps(), "momentum": MOMENTUM}, colour="#FF8C94"),
        NormalizerEntry("prelayer", "PreLayerNorm", {"eps": eps()}, colour="#D55E00"),
        NormalizerEntry("regnorm", "RegNorm", REGULARIZER, colour="#225555"),
        NormalizerEntry("preregnorm", "PreRegNorm", REGULARIZER, colour="#BB5566", dashes="--"),
        NormalizerEntry("none", "no normalization", affine=False, colour="#000000"),
        NormalizerEntry(
            "noisy_none",
            "no normalization + noise",
            {"noise_mean": NOISE_MEAN, "noise_var": NOISE_VAR},
            affine=False,
            colour="#888888",
            dashes=":",
        ),
    ],
)
"""The colours are the Okabe & Ito (2008) colours for the main rivals, completed from
Paul Tol's schemes and a few darker and lighter hues so that every pair differs by
CIEDE2000 >= 17 (tests/test_figures.py checks a floor of 15) with no yellow that
vanishes on white. Related normalizers (the Batch Norm variants, PreRegNorm) also
differ by line style (``dashes``)."""

WITHOUT_GAMMA_BETA = tuple(NORMALIZERS.where(affine=False))
"""Normalizers with no gamma and beta: policies that train only those cannot apply."""
