"""Information propagation: correlation of two similar minibatches through depth.

"Is Batch Norm unique?" (2020, §4.1, §5 and figure 3b), after Poole et al. (2016) and
Schoenholz et al. (2016): the correlation between the representations of two similar
minibatches at every layer. Towards 1 with depth: dissimilar inputs converge to the
same activations (ordered phase); towards 0: the network is chaotic (Batch Norm at
init, the paper finds).
"""

from __future__ import annotations

import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    Record,
    draw_seed,
    layers,
    probe_batch,
    reseeded,
    set_mode,
)
from normstudy.probes.norms import capture_outputs
from normstudy.probes.registry import register_probe


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two equally shaped tensors, flattened (NaN if one is constant)."""
    stacked = torch.stack([a.reshape(-1), b.reshape(-1)]).double()
    return float(torch.corrcoef(stacked)[0, 1])


@register_probe
class Propagation(Probe):
    """Correlation between the representations of a minibatch x and of x' = x + noise.

    The paper's formula was lost from the text of §4.1 we worked from (docs/science.md):
    "the correlation between two similar minibatches ... here represents an entire
    minibatch of data". Our reading:
    x is the first ``batch_size`` probe examples (standardised), x' = x + ``noise`` * e
    with e ~ N(0, 1) elementwise, drawn from the probes' generator (noise = 0.25 gives an
    input correlation of about 0.97). Both go through the model separately, each with its
    own batch statistics, in ``mode`` (train: batch statistics, as at init in the paper),
    under the same RNG seed so a noisy normalizer draws the same noise for both. For every
    normalised layer, ``correlation`` is the Pearson correlation between the flattened
    layer outputs (after the normalizer, before the nonlinearity) of the two minibatches;
    ``input_correlation`` and ``output_correlation`` (logits) are recorded for the model.
    """

    name = "propagation"

    def run(self, ctx: ProbeContext) -> list[Record]:
        set_mode(ctx.model, self.settings["mode"])
        x, _ = probe_batch(ctx, self.samples_needed(ctx.config))
        noise = torch.randn(x.shape, generator=ctx.generator, dtype=x.dtype)
        x_similar = x + self.settings["noise"] * noise.to(x.device)
        seed = draw_seed(ctx.generator)
        with torch.no_grad():
            with reseeded(seed):
                logits, outputs = capture_outputs(ctx, x)
            with reseeded(seed):
                logits_similar, outputs_similar = capture_outputs(ctx, x_similar)
        records = [
            self.record("input_correlation", pearson(x, x_similar)),
            self.record("output_correlation", pearson(logits, logits_similar)),
        ]
        for index, (name, _) in enumerate(layers(ctx.model)):
            a, b = outputs[index], outputs_similar[index]
            if a is not None and b is not None:
                records.append(self.record("correlation", pearson(a, b), (name, index)))
        return records
