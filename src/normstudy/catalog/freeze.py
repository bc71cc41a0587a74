"""Parameter roles and freeze policies: which roles each policy trains, labels, colours.

:mod:`normstudy.freeze` gives every parameter a role by what it does and trains the
roles of the cell's policy, as declared here. ``norm`` is Frankle, Schwab & Morcos
(2020)'s "BatchNorm only" (every weight stays at its random init, only gamma and beta
train); ``head`` their random-features baseline; ``norm+head`` their BN + output layer;
``random`` their control of as many randomly chosen weights as BN-only trains (§4-5).
"""

from __future__ import annotations

from dataclasses import dataclass

from normstudy.catalog.base import Catalog, Entry


@dataclass(frozen=True)
class Role(Entry):
    """A parameter role; ``legend_rank`` orders figure legends (the catalog's order is
    the order of the tables' ``params_<role>`` and ``trainable_<role>`` columns)."""

    colour: str = "#7F7F7F"
    legend_rank: int = 0


PARAMETER_ROLES: Catalog[Role] = Catalog(
    "parameter role",
    [
        Role("norm_gamma", "γ (normalizers)", colour="#0072B2", legend_rank=0),
        Role("norm_beta", "β (normalizers)", colour="#56B4E9", legend_rank=1),
        Role("weight", "weights", colour="#D55E00", legend_rank=3),
        Role("bias", "biases", colour="#E69F00", legend_rank=4),
        Role("head", "output layer", colour="#009E73", legend_rank=5),
        Role("random_subset", "random weights (freeze random)", colour="#999999", legend_rank=2),
    ],
)
"""``norm_gamma``/``norm_beta``: a normalizer's per-channel scale and shift; ``head``:
the final classifier; ``weight``: every other parameter with two or more dimensions;
``bias``: every other one-dimensional one; ``random_subset``: the entries the ``random``
policy trains (the rest of those weights keeps the role ``weight``)."""

ALL_PARAMETERS = Role("all", "all parameters", colour="#000000", legend_rank=6)
"""Not a role: the whole model, as the gradient figures draw it beside the roles."""


@dataclass(frozen=True)
class FreezePolicy(Entry):
    """``trains``: the roles whose parameters train; ``colour``: in every figure."""

    trains: frozenset[str] = frozenset()
    colour: str = "#000000"


FREEZE_POLICIES: Catalog[FreezePolicy] = Catalog(
    "freeze policy",
    [
        # random_subset exists only under "random".
        FreezePolicy(
            "all",
            "all trained",
            trains=frozenset(PARAMETER_ROLES) - {"random_subset"},
            colour="#000000",
        ),
        FreezePolicy(
            "norm+head",
            "γ, β + output layer",
            trains=frozenset({"norm_gamma", "norm_beta", "head"}),
            colour="#009E73",
        ),
        FreezePolicy(
            "norm", "γ, β only", trains=frozenset({"norm_gamma", "norm_beta"}), colour="#0072B2"
        ),
        FreezePolicy(
            "random",
            "2 random weights per channel",
            trains=frozenset({"random_subset"}),
            colour="#999999",
        ),
        FreezePolicy("head", "output layer only", trains=frozenset({"head"}), colour="#E69F00"),
        FreezePolicy(
            "all-but-norm",
            "all but γ, β",
            trains=frozenset({"weight", "bias", "head"}),
            colour="#CC79A7",
        ),
        FreezePolicy("gamma", "γ only", trains=frozenset({"norm_gamma"}), colour="#56B4E9"),
        FreezePolicy("beta", "β only", trains=frozenset({"norm_beta"}), colour="#D55E00"),
    ],
    plural="freeze policies",
)

RANDOM_FREEZE_EXCLUDED = {"model": ("lstm",), "norm": ("weight",)}
"""Where freeze ``random`` cannot match BN-only's count: the LSTM's state norm follows
no weight layer, and Weight Norm already reparameterises the weights it would choose
from (:func:`normstudy.freeze.select_random_entries`)."""


def random_freeze_error(model: str, norm: str, freeze: str) -> str | None:
    """Why freeze ``random`` cannot run with this model and normalizer, or None."""
    from normstudy.catalog.models import MODELS
    from normstudy.catalog.normalizers import NORMALIZERS

    if freeze != "random":
        return None
    for key, value in (("model", model), ("norm", norm)):
        if value in RANDOM_FREEZE_EXCLUDED[key]:
            family = MODELS if key == "model" else NORMALIZERS.where(affine=True)
            valid = sorted(set(family) - set(RANDOM_FREEZE_EXCLUDED[key]))
            return (
                f"freeze 'random' is not defined for {key} {value!r}; valid {key}s: "
                f"{', '.join(valid)}"
            )
    return None
