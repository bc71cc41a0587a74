"""Batch Norm followed by time-varying noise ("noisy" BatchNorm, Santurkar et al. 2018)."""

from __future__ import annotations

import torch

from normstudy.norms.batch import BatchNorm
from normstudy.norms.common import check_at_least
from normstudy.norms.registry import NORMALIZERS


@NORMALIZERS.register("batch_noisy")
class NoisyBatchNorm(BatchNorm):
    """Batch Norm whose output is perturbed by noise that changes every training step.

    Santurkar et al. 2018, §2 (our copy: papers/001, the Kariya summary): "each
    activation of each sample was perturbed with i.i.d. noise sampled from a non-zero
    mean and non-unit variance distribution ... This noise distribution changed at
    every step", to create severe covariate shift after every Batch Norm layer
    (gamma and beta included). Their appendix (not among our texts; we go by the
    study's summary of it) makes the noise multiplicative and additive, with means
    drawn from U(-n_mu, n_mu) and variances from U(1, n_sigma) at every step. Our
    reading is spelled out in :meth:`sample_noise`; ``noise_mean`` is n_mu and
    ``noise_var`` is n_sigma (the defaults are ours, not the paper's).

    Noise is applied in training mode only; evaluation mode is plain Batch Norm.
    Draws use torch's global RNG, so ``torch.manual_seed`` makes them reproducible.
    """

    options = {"eps": 1e-5, "momentum": 0.1, "noise_mean": 0.5, "noise_var": 1.25}

    def __init__(
        self,
        num_features: int,
        kind: str,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        noise_mean: float = 0.5,
        noise_var: float = 1.25,
    ) -> None:
        super().__init__(num_features, kind, eps=eps, momentum=momentum)
        self.noise_mean = check_at_least("noise_mean", noise_mean, 0.0)
        self.noise_var = check_at_least("noise_var", noise_var, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine(self.normalize(x))
        if not self.training:
            return y
        scale, shift = self.sample_noise(y)
        return y * scale + shift

    def sample_noise(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Multiplicative and additive noise (``scale``, ``shift``) shaped like ``y``.

        Every activation (sample, channel, position) gets its own draws at every call:
        a mean ``shift ~ U(-n_mu, n_mu)`` and a variance ``v ~ U(1, n_sigma)``, applied
        as ``y * sqrt(v) + shift``: an activation that Batch Norm left with zero mean
        and unit variance (before gamma, beta) now has a non-zero mean and a non-unit
        variance, drawn independently per activation and per step.

        We read "s, m drawn from those distributions" this way rather than as a
        two-level scheme (per-channel mean and variance drawn each step, then
        per-activation Gaussian noise with that mean and variance): the latter's
        i.i.d. noise of variance >= 1 stopped a 6-layer MLP from training in our
        tests, whereas Santurkar et al. find that noisy BN trains about as well as BN.
        """
        like = {"device": y.device, "dtype": y.dtype}
        shift = torch.empty(y.shape, **like).uniform_(-self.noise_mean, self.noise_mean)
        scale = torch.empty(y.shape, **like).uniform_(1.0, self.noise_var).sqrt_()
        return scale, shift
