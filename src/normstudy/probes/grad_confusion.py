"""Gradient confusion (correlation of minibatch gradients) and gradient norm through depth.

"Is Batch Norm unique?" (2020): §4.2 and §5 (figures 1b, 3c) correlate the gradients of
different minibatches, after Sankararaman et al. (2019), for whom highly similar
gradients between batches ("gradient confusion") slow SGD down; §4.3 (figure 2b)
follows the growth of the gradient norm with depth at init (Yang et al. 2019 predict
gradient explosion under Batch Norm without skip connections).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    ProbeFailure,
    Record,
    flat,
    gradients,
    layer_parameter_names,
    selected_names,
    set_mode,
)
from normstudy.probes.registry import register_probe


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    denominator = a.norm() * b.norm()
    return float(a @ b / denominator) if denominator > 0 else float("nan")


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return cosine(a - a.double().mean(), b - b.double().mean())


@register_probe
class GradConfusion(Probe):
    """Pairwise similarity of the gradients of ``n_batches`` disjoint probe minibatches.

    The probe data are cut into consecutive minibatches of ``batch_size`` (fewer examples
    each if the subset is short); each gives the gradient of the training loss (train
    mode) w.r.t. the ``parameters`` (trainable by default). For every pair of minibatches
    we take the cosine and the Pearson correlation of the two gradient vectors and record
    their mean over pairs (``grad_cosine_mean``, ``grad_correlation_mean``) and the
    smallest cosine (``grad_cosine_min``), over all parameters (``model``) and over each
    normalised layer's own parameters. ``grad_norm`` is the L2 norm of the gradient,
    averaged over the minibatches, per layer and overall (§4.3: its growth with depth).
    """

    name = "grad_confusion"

    def samples_needed(self, config: dict) -> int:
        return self.settings["n_batches"] * super().samples_needed(config)

    def run(self, ctx: ProbeContext) -> list[Record]:
        set_mode(ctx.model, "train")
        n_batches = self.settings["n_batches"]
        size = min(super().samples_needed(ctx.config), len(ctx.probe_y) // n_batches)
        if size < 1:
            raise ProbeFailure(
                f"{len(ctx.probe_y)} probe examples cannot make {n_batches} minibatches"
            )
        names = selected_names(ctx.model, self.settings["parameters"])
        if not names:
            raise ProbeFailure("no parameters to differentiate")
        per_batch = [
            gradients(
                ctx,
                ctx.probe_x[i * size : (i + 1) * size],
                ctx.probe_y[i * size : (i + 1) * size],
                names,
            )
            for i in range(n_batches)
        ]
        records = [self.record("batch_size", size)]
        records += self.similarity_records([flat(list(g.values())) for g in per_batch])
        for index, layer, params in layer_parameter_names(ctx.model):
            own = [n for n in params if n in names]
            if own:
                vectors = [flat([g[n] for n in own]) for g in per_batch]
                records += self.similarity_records(vectors, (layer, index))
        return records

    def similarity_records(self, vectors: list[torch.Tensor], where=("model", -1)):
        pairs = list(itertools.combinations(vectors, 2))
        cosines = [cosine(a, b) for a, b in pairs]
        correlations = [correlation(a, b) for a, b in pairs]
        norms = [float(v.double().norm()) for v in vectors]
        return [
            self.record("grad_cosine_mean", np.mean(cosines), where),
            self.record("grad_cosine_min", np.min(cosines), where),
            self.record("grad_correlation_mean", np.mean(correlations), where),
            self.record("grad_norm", np.mean(norms), where),
        ]
