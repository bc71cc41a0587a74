"""An LSTM classifier with normalizers between its components (Torri 2022 §3.1)."""

from __future__ import annotations

import torch
from torch import nn

from normstudy.models.common import NormSchedule, normed_dense, positive_int
from normstudy.models.registry import register_model
from normstudy.norms.base import Normalizer, NormFactory


def rows_as_sequence(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) as sequences of their rows: (N, H, C * W)."""
    n, c, h, w = images.shape
    return images.permute(0, 2, 1, 3).reshape(n, h, c * w)


def sequence_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(T, F) of a sequence input (T, F) or of an image (C, H, W) read row by row."""
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    if len(input_shape) == 3:
        channels, height, width = input_shape
        return height, channels * width
    raise ValueError(
        f"lstm needs sequences with input_shape (T, F) or images (C, H, W), read as H rows "
        f"of C*W features; got {input_shape}"
    )


@register_model("lstm", depth=1, width=128)
class LSTMClassifier(nn.Module):
    """Input projection (dense) -> norm -> LSTM -> norm on the last hidden state -> head.

    Torri 2022 §3.1: embedding -> BN -> LSTM, last hidden state -> BN -> linear head,
    "between every component of the network there is a batch normalization layer". The
    dense projection of each time step's features plays the role of the embedding (no
    nonlinearity follows it, as none follows an embedding); its normalizer sees the
    (N * T, width) matrix of all time steps as a "dense" layer. The LSTM has ``depth``
    layers of ``width`` hidden units. The normalizer of the last hidden state is applied
    as a module of its own (the LSTM is not a conv/dense layer, so the ``pre_affine`` and
    ``attach`` hooks of :class:`~normstudy.norms.base.NormedLayer` do not apply to it).
    For ``norm_every``, the projection is layer 1 and the LSTM layer 2. ``skip`` has no
    effect. Images (C, H, W) are read as H rows of C * W features.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm: NormFactory,
        depth: int,
        width: int,
        norm_every: int,
        skip: bool,
    ) -> None:
        super().__init__()
        _, features = sequence_shape(input_shape)
        depth = positive_int("lstm", "depth", depth, "the number of LSTM layers, >= 1")
        width = positive_int("lstm", "width", width, "the number of hidden units, >= 1")
        schedule = NormSchedule(norm, norm_every)
        self.projection = normed_dense(features, width, schedule.next_norm(width, "dense"))
        self.lstm = nn.LSTM(width, width, num_layers=depth, batch_first=True)
        self.state_norm: Normalizer | None = schedule.next_norm(width, "dense")
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = rows_as_sequence(x)
        n, t, f = x.shape
        x = self.projection(x.reshape(n * t, f)).reshape(n, t, -1)
        _, (hidden, _) = self.lstm(x)
        state = hidden[-1]
        if self.state_norm is not None:
            state = self.state_norm(state)
        return self.head(state)
