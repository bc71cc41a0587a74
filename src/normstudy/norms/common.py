"""Axes, statistics and option checks shared by the normalizers.

Inputs are (N, C) for dense layers and (N, C, H, W) for conv layers. "Batch" statistics
are per channel over the batch and spatial axes (Ioffe & Szegedy 2015, §3.2 for convs);
"layer" statistics are per example over every non-batch axis (Ba et al. 2016, §3).
"""

from __future__ import annotations

import math
import numbers

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


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_eps(eps: object) -> float:
    """``eps`` as a float; it must be a positive number."""
    if not _is_real(eps) or not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a positive number; got {eps!r}")
    return float(eps)


def check_momentum(momentum: object) -> float:
    """``momentum`` of running statistics as a float; it must lie in (0, 1]."""
    if not _is_real(momentum) or not 0 < momentum <= 1:
        raise ValueError(f"momentum must be a number in (0, 1]; got {momentum!r}")
    return float(momentum)


def check_at_least(name: str, value: object, lower: float) -> float:
    """``value`` of option ``name`` as a float; it must be a finite number >= ``lower``."""
    if not _is_real(value) or not math.isfinite(value) or value < lower:
        raise ValueError(f"{name} must be a finite number >= {lower}; got {value!r}")
    return float(value)
