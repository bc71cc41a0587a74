"""Step noise after a normalizer (Santurkar et al. 2018, §2.1): ``batch_noisy`` adds it
after Batch Norm, ``noisy_none`` to a network without normalization. Both draw it with
:class:`StepNoise`, so the two experiments see the same noise."""

from __future__ import annotations

import torch

from normstudy.norms.base import Normalizer
from normstudy.norms.batch import BatchNorm
from normstudy.norms.common import per_channel
from normstudy.norms.registry import register_norm


class StepNoise:
    """A per-channel shift and scale drawn anew at every training step.

    Santurkar et al. 2018, appendix A as we read it (see :class:`NoisyBatchNorm`): at
    step t, for every channel j, a mean ``m_j^t ~ U(-n_mu, n_mu)`` and a variance
    ``v_j^t ~ U(1, n_sigma)``, applied as ``y_j -> sqrt(v_j^t) * y_j + m_j^t`` and shared by
    the whole batch. ``noise_mean`` is n_mu, ``noise_var`` is n_sigma. Draws use torch's
    global RNG, so ``torch.manual_seed`` makes them reproducible.
    """

    noise_mean: float
    noise_var: float
    training: bool

    def init_noise(self, noise_mean: float, noise_var: float) -> None:
        self.noise_mean = noise_mean
        self.noise_var = noise_var

    def add_noise(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` with this step's noise in training mode; ``y`` itself in eval mode."""
        if not self.training:
            return y
        scale, shift = self.sample_noise(y)
        return y * scale + shift

    def sample_noise(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's multiplicative and additive noise (``scale``, ``shift``) for ``y``.

        One draw per channel, shaped to broadcast over the batch and spatial axes: the
        shift ``m ~ U(-n_mu, n_mu)`` and the scale ``sqrt(v)`` with the variance
        ``v ~ U(1, n_sigma)`` (Santurkar et al. 2018, appendix A).
        """
        like = {"device": y.device, "dtype": y.dtype}
        channels = y.shape[1]
        shift = torch.empty(channels, **like).uniform_(-self.noise_mean, self.noise_mean)
        scale = torch.empty(channels, **like).uniform_(1.0, self.noise_var).sqrt_()
        return per_channel(scale, y), per_channel(shift, y)


@register_norm("batch_noisy")
class NoisyBatchNorm(StepNoise, BatchNorm):
    """Batch Norm whose output is shifted and scaled by a distribution drawn anew every step.

    Santurkar et al. 2018, §2.1 (as Kariya's summary reports it; docs/science.md): noise is
    injected after the BatchNorm layer (so after gamma and beta), "sampled from a non-zero
    mean and non-unit variance distribution. This noise distribution changed at every
    step", to create severe covariate shift whose statistics change from step to step.
    Their appendix A (not among our texts; this is our reading of it, to be checked
    against arXiv 1805.11604) draws, at every time step t and for every activation j, a mean
    ``m_j^t ~ U(-n_mu, n_mu)`` and a variance ``v_j^t ~ U(1, n_sigma)`` and applies them
    to the BN output: ``y_j -> sqrt(v_j^t) * y_j + m_j^t`` (:meth:`sample_noise`). The
    draws are shared by the whole batch, so every step moves each channel's batch mean
    by ``m_j^t`` and multiplies its spread by ``sqrt(v_j^t)``: the distribution a layer
    sees is shifted anew at every step, which is the point of the experiment. (Noise
    drawn i.i.d. per sample instead averages out over the batch: a channel's batch
    mean then barely moves between steps.) An "activation" of a convolutional layer is
    a channel, as for Batch Norm's own statistics and gamma, beta (Ioffe & Szegedy
    2015, §3.2), so one mean and one variance per channel and step.

    ``noise_mean`` is n_mu and ``noise_var`` is n_sigma; the defaults n_mu = 0.5 and
    n_sigma = 1.25 are the magnitudes of Santurkar et al.'s appendix A for their VGG
    on CIFAR-10, as we recall them (the appendix is not in our texts).

    Noise is applied in training mode only: Santurkar et al. §2.1 *train* networks with
    noise injected ("we train networks with random noise injected after BatchNorm
    layers") to study optimization; evaluation is plain Batch Norm with its running
    statistics, which the noise does not touch. Draws use torch's global RNG, so
    ``torch.manual_seed`` makes them reproducible.
    """

    def __init__(
        self,
        num_features: int,
        kind: str,
        *,
        eps: float,
        momentum: float,
        noise_mean: float,
        noise_var: float,
    ) -> None:
        super().__init__(num_features, kind, eps=eps, momentum=momentum)
        self.init_noise(noise_mean, noise_var)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_noise(self.affine(self.normalize(x)))


@register_norm("noisy_none")
class NoisyIdentity(StepNoise, Normalizer):
    """No normalization, but the step noise of ``batch_noisy``: the control of Santurkar
    et al. 2018, §2.1 (Kariya's summary), who "also added the same amount of noise to
    the first variant of VGGNet (without BatchNorm). This prevented the network from
    training entirely."

    Like ``none`` it has no gamma and beta (``has_affine`` is False), so the layer it
    follows keeps its bias and the network's parameters are exactly those of ``none``;
    only the noise differs. The noise is :class:`StepNoise`, the same code, options and
    defaults as :class:`NoisyBatchNorm`, applied to the layer's output (where
    ``batch_noisy`` applies it to Batch Norm's output), in training mode only.
    """

    def __init__(
        self, num_features: int, kind: str, *, noise_mean: float, noise_var: float
    ) -> None:
        super().__init__(num_features, kind)
        self.init_noise(noise_mean, noise_var)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_noise(x)
