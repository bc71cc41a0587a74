"""The probes: measurements taken inside a cell, their options and what they need.

Each entry is what the probe class (:mod:`normstudy.probes`) of the same name runs; the
class takes its options from here, so a study's probe options are checked while
planning. ``expensive`` probes are opt-in and run only at init and end unless scheduled
(:mod:`normstudy.probes.schedule`); ``float_inputs`` probes differentiate by or add
noise to the inputs, so cannot run on the token ids of a text dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from normstudy.catalog.base import Catalog, Entry
from normstudy.catalog.options import (
    Option,
    at_least,
    choice,
    each_positive,
    non_empty,
    positive,
)

MODES = ("train", "eval")
"""Train mode (batch statistics, noise) or eval mode (running statistics)."""
PARAMETER_SETS = ("trainable", "all")
"""The parameters a gradient probe differentiates: those that train, or all."""

BATCH_SIZE = Option(None, "int | None", positive, "probe minibatch; null: the cell's batch size")
MODE = Option("train", "str", choice(*MODES), "the model's mode while measuring")
PARAMETERS = Option("trainable", "str", choice(*PARAMETER_SETS), "parameters differentiated")


@dataclass(frozen=True)
class ProbeDefinition(Entry):
    expensive: bool = False
    float_inputs: bool = False


PROBES: Catalog[ProbeDefinition] = Catalog(
    "probe",
    [
        ProbeDefinition(
            "grad_confusion",
            "gradient confusion",
            {
                "batch_size": BATCH_SIZE,
                "n_batches": Option(4, "int", at_least(2), "minibatches, compared in pairs"),
                "parameters": PARAMETERS,
            },
        ),
        ProbeDefinition(
            "grad_norms",
            "gradient norms by layer and role",
            {"batch_size": BATCH_SIZE, "parameters": PARAMETERS},
        ),
        ProbeDefinition(
            "hessian",
            "Hessian spectrum",
            {
                "n_samples": Option(512, "int", positive, "examples of the Hessian's loss"),
                "mode": MODE,
                "k": Option(10, "int", positive, "top eigenvalues (Lanczos)"),
                "tol": Option(1e-4, "float", positive, "eigsh tolerance"),
                "maxiter": Option(300, "int", positive, "eigsh iterations"),
                "n_vectors": Option(4, "int", positive, "random vectors of the density (SLQ)"),
                "lanczos_steps": Option(32, "int", positive, "Lanczos steps per vector (SLQ)"),
            },
            expensive=True,
        ),
        ProbeDefinition(
            "ics",
            "internal covariate shift",
            {"batch_size": BATCH_SIZE},
            expensive=True,
        ),
        ProbeDefinition(
            "norm_params",
            "γ and β statistics",
            {
                "bins": Option(50, "int", positive, "histogram bins"),
                "hist_limit": Option(2.0, "float", positive, "histograms span ±hist_limit"),
                "thresholds": Option(
                    (0.01, 0.05, 0.1), "numbers", each_positive, "|γ| below each is counted"
                ),
                "max_values": Option(
                    512, "int", at_least(0), "record every value up to this many γ (0: never)"
                ),
                "per_layer_hist": Option(False, "bool", None, "histograms per layer too"),
            },
        ),
        ProbeDefinition(
            "norms",
            "activation and gradient norms through depth",
            {"batch_size": BATCH_SIZE},
            float_inputs=True,
        ),
        ProbeDefinition(
            "propagation",
            "information propagation",
            {
                "batch_size": BATCH_SIZE,
                "noise": Option(0.25, "float", at_least(0.0), "noise of the similar minibatch"),
                "mode": MODE,
            },
            float_inputs=True,
        ),
        ProbeDefinition(
            "smoothness",
            "loss landscape smoothness",
            {
                "batch_size": BATCH_SIZE,
                "step_factors": Option(
                    (0.5, 1.0, 2.0, 4.0),
                    "numbers",
                    non_empty(each_positive),
                    "steps along the gradient",
                ),
            },
            expensive=True,
        ),
    ],
)
