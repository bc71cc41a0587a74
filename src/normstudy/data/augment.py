"""Batch augmentation on the training device: random translation and horizontal flip.

Frankle et al. (2020, "Training BatchNorm and only BatchNorm"; schedule quoted by G42 2021,
§5 Methodology) augment CIFAR by "randomly flipping horizontally, and randomly translating
by up to four pixels in each direction", which open_lth implements per image as torchvision's
``RandomCrop(32, padding=4)`` (zero padding) and ``RandomHorizontalFlip``. Here the same
distribution is drawn for a whole batch at once in the airbench style (KellerJordan's
``batch_crop``/``batch_flip_lr``): one vertical and one horizontal shift per image, uniform on
``-translate..translate``, and a flip with probability 1/2. ``padding="zeros"`` (default)
matches Frankle's zero padding; ``"reflect"`` is airbench's reflect padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = {"zeros": "constant", "reflect": "reflect"}


def translated(x: torch.Tensor, shifts: torch.Tensor, translate: int, padding: str) -> torch.Tensor:
    """``x`` (N, C, H, W) with image i shifted so ``out[i, :, r, c] = padded x[i, :, r+dy, c+dx]``.

    ``shifts`` is (N, 2) of (dy, dx) in ``-translate..translate``; pixels from outside the
    image come from the padding.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (translate,) * 4, mode=PADDING_MODES[padding])
    rows = torch.arange(h, device=x.device) + translate + shifts[:, :1]
    cols = torch.arange(w, device=x.device) + translate + shifts[:, 1:]
    examples = torch.arange(n, device=x.device).view(n, 1, 1)
    crops = padded[examples, :, rows.view(n, h, 1), cols.view(n, 1, w)]
    return crops.permute(0, 3, 1, 2).contiguous()


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    translate: int = 4,
    flip: bool = True,
    padding: str = "zeros",
) -> torch.Tensor:
    """A randomly translated and flipped copy of the (N, C, H, W) batch ``x`` (uint8 or float).

    All randomness comes from ``generator`` (drawn on its own device, then moved to
    ``x.device``), so the same generator state gives the same batch on any device.
    ``translate=0, flip=False`` returns ``x`` unchanged.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects (N, C, H, W), got shape {tuple(x.shape)}")
    if padding not in PADDING_MODES:
        raise ValueError(f"unknown padding {padding!r}; valid: {', '.join(PADDING_MODES)}")
    if not 0 <= translate < min(x.shape[-2:]):
        raise ValueError(
            f"translate={translate} must be in [0, {min(x.shape[-2:])}) for images of "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    n = len(x)
    out = x
    if translate > 0:
        shifts = torch.randint(
            -translate, translate + 1, (n, 2), generator=generator, device=generator.device
        )
        out = translated(out, shifts.to(x.device), translate, padding)
    if flip:
        flips = torch.rand(n, generator=generator, device=generator.device) < 0.5
        out = torch.where(flips.to(x.device).view(n, 1, 1, 1), out.flip(-1), out)
    return out
