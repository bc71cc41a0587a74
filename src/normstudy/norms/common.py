"""Axes and statistics shared by the normalizers.

Inputs are (N, C) for dense layers and (N, C, H, W) for conv layers. "Batch" statistics
are per channel over the batch and spatial axes (Ioffe & Szegedy 2015, §3.2 for convs);
"layer" statistics are per example over every non-batch axis (Ba et al. 2016, §3).
"""

from __future__ import annotations

import torch


def batch_axes(x: torch.Tensor) -> tuple[int, ...]:
    """The axes batch statistics reduce: batch and spatial, leaving one value per channel."""
    return (0, *range(2, x.dim()))


def layer_axes(x: torch.Tensor) -> tuple[int, ...]:
    """The axes layer statistics reduce: all but the batch axis, one value per example."""
    return tuple(range(1, x.dim()))


def per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A length-C vector shaped to broadcast against ``x`` along its channel axis."""
    return values.view(1, -1, *([1] * (x.dim() - 2)))


def mean_square(x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Mean of ``x**2`` over ``axes`` (kept, for broadcasting)."""
    return x.pow(2).mean(axes, keepdim=True)


def update_running_(running: torch.Tensor, batch_value: torch.Tensor, momentum: float) -> None:
    """``running <- (1 - momentum) * running + momentum * batch_value``, as torch's BN does."""
    with torch.no_grad():
        running.lerp_(batch_value.detach().to(running.dtype), momentum)
