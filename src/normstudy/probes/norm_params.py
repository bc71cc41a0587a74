"""The normalizers' gamma and beta: values, histograms and the fraction switched off.

Frankle et al. (2020, §5) find that BN-only training "learns to disable around a third of
the random features" by driving their gamma to about 0; Torri (2022, §4.3, figures 4-5)
find that the gamma (and beta) histograms peak at 0 under BN-only training.
"""

from __future__ import annotations

import numpy as np
import torch

from normstudy.norms.base import Normalizer, has_gamma_beta
from normstudy.probes.base import Probe, ProbeContext, Record, layers
from normstudy.probes.registry import register_probe


def edge_label(edge: float) -> str:
    return f"{edge + 0.0:.6g}"


def all_normalizers(model: torch.nn.Module) -> list[Normalizer]:
    return [m for m in model.modules() if has_gamma_beta(m)]


@register_probe
class NormParams(Probe):
    """Gamma and beta of every normalizer.

    Records, per normalised layer and for the whole ``model`` (every normalizer, also those
    outside a normalised layer such as an LSTM's state norm):

    - ``gamma_mean``, ``gamma_abs_mean``, ``gamma_std``, ``beta_mean``, ``beta_std``;
    - ``frac_abs_gamma_below/<t>``: the fraction of features with ``|gamma| < t`` for each
      threshold ``t`` (Frankle et al. count gammas "close to 0"; our copy of their text
      lacks the exact cut, so several are recorded: 0.01, 0.05, 0.1 by default);
    - model only (per layer too if ``per_layer_hist``): histograms on ``bins`` equal bins
      over ``[-hist_limit, hist_limit]``: ``hist_gamma/<left edge>`` is the number of
      gammas in ``[edge, edge + 2 * hist_limit / bins)`` (the last bin is closed),
      ``hist_gamma_under`` and ``hist_gamma_over`` count those outside; same for beta;
    - per layer: every value, ``gamma/<channel>`` and ``beta/<channel>``, when the model
      has at most ``max_values`` gammas in all (0: never).
    """

    name = "norm_params"

    def samples_needed(self, config: dict) -> int:
        return 0

    def run(self, ctx: ProbeContext) -> list[Record]:
        norms = all_normalizers(ctx.model)
        gammas = [n.weight.detach().cpu().double().numpy().ravel() for n in norms]
        betas = [n.bias.detach().cpu().double().numpy().ravel() for n in norms]
        gamma = np.concatenate(gammas) if norms else np.zeros(0)
        beta = np.concatenate(betas) if norms else np.zeros(0)
        records = [self.record("num_gamma", gamma.size)]
        if not norms:
            return records
        records += self.summary_records(gamma, beta)
        records += self.histogram_records("gamma", gamma) + self.histogram_records("beta", beta)
        with_values = 0 < gamma.size <= self.settings["max_values"]
        for index, (name, layer) in enumerate(layers(ctx.model)):
            if not has_gamma_beta(layer.norm):
                continue
            where = (name, index)
            g = layer.norm.weight.detach().cpu().double().numpy().ravel()
            b = layer.norm.bias.detach().cpu().double().numpy().ravel()
            records += self.summary_records(g, b, where)
            if self.settings["per_layer_hist"]:
                records += self.histogram_records("gamma", g, where)
                records += self.histogram_records("beta", b, where)
            if with_values:
                records += [self.record(f"gamma/{c}", v, where) for c, v in enumerate(g)]
                records += [self.record(f"beta/{c}", v, where) for c, v in enumerate(b)]
        return records

    def summary_records(self, gamma, beta, where=("model", -1)) -> list[Record]:
        records = [
            self.record("gamma_mean", gamma.mean(), where),
            self.record("gamma_abs_mean", np.abs(gamma).mean(), where),
            self.record("gamma_std", gamma.std(), where),
            self.record("beta_mean", beta.mean(), where),
            self.record("beta_std", beta.std(), where),
        ]
        for threshold in self.settings["thresholds"]:
            fraction = float(np.mean(np.abs(gamma) < threshold))
            records.append(self.record(f"frac_abs_gamma_below/{threshold:g}", fraction, where))
        return records

    def histogram_records(self, what: str, values, where=("model", -1)) -> list[Record]:
        limit = self.settings["hist_limit"]
        edges = np.linspace(-limit, limit, self.settings["bins"] + 1)
        counts, _ = np.histogram(values, bins=edges)
        records = [
            self.record(f"hist_{what}/{edge_label(edge)}", count, where)
            for edge, count in zip(edges[:-1], counts, strict=True)
        ]
        records.append(self.record(f"hist_{what}_under", np.sum(values < -limit), where))
        records.append(self.record(f"hist_{what}_over", np.sum(values > limit), where))
        return records
