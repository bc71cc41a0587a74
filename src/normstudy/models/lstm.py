"""LSTM classifiers with normalizers between their components (Torri 2022 §3.1): ``lstm``
reads images as sequences of rows, ``lstm_text`` token ids of a text dataset."""

from __future__ import annotations

import torch
from torch import nn

from normstudy.data.base import PAD
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


@register_model("lstm")
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


@register_model("lstm_text")
class TextLSTMClassifier(nn.Module):
    """Embedding -> norm -> LSTM -> norm on the last hidden state -> head, on token ids.

    Torri 2022 §3.1, the sentiment model: "an embedding layer", "a LSTM ... from which the
    last hidden state is taken", "a linear layer followed by a softmax" (the softmax is in
    the loss), and "between every component of the network there is a batch
    normalization layer". ``embedding_dim`` E and ``width`` H (hidden units; ``depth``
    LSTM layers) default to 200 and 102: Torri's 604 BN parameters are 2 (E + H), so
    E + H = 302, and a total of 5.5M parameters with the LSTM's 4H(E + H) + 8H, the head's
    2H + 2 and the embedding's V E fits E = 200 (the dimension of GloVe's Twitter vectors,
    Pennington et al. 2014) with a vocabulary V of about 26.9k words, the order of
    Sentiment140's words seen twice in 90k tweets (E = H = 151 would need V = 35k; E = 100
    would need V = 52k).

    The embedding starts as PyTorch's N(0, 1) (Torri: "learned from scratch") or as the
    dataset's ``embeddings`` (GloVe, Torri's second experiment); ``embedding_dim`` must
    then equal their dimension. Padding (id :data:`~normstudy.data.base.PAD`) is kept
    out: the embedding's normalizer sees only the real tokens of the batch, an (M, E)
    matrix as after a "dense" layer (padding positions stay zero), and the last hidden
    state is read at each sequence's own length; the LSTM is causal, so padding after a
    sequence cannot reach that state. For ``norm_every``, the embedding is layer 1 and the
    LSTM layer 2. ``skip`` has no effect.
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
        vocab_size: int,
        embeddings: torch.Tensor | None,
        embedding_dim: int,
    ) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"lstm_text needs token sequences (T,); got {input_shape}")
        depth = positive_int("lstm_text", "depth", depth, "the number of LSTM layers, >= 1")
        width = positive_int("lstm_text", "width", width, "the number of hidden units, >= 1")
        dim = positive_int("lstm_text", "embedding_dim", embedding_dim, "an integer >= 1")
        if embeddings is not None and tuple(embeddings.shape) != (vocab_size, dim):
            raise ValueError(
                f"the dataset's pre-trained embeddings are {tuple(embeddings.shape)}, "
                f"not (vocab_size, embedding_dim) = ({vocab_size}, {dim}); set the model "
                f"option embedding_dim to {embeddings.shape[-1]}"
            )
        schedule = NormSchedule(norm, norm_every)
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        if embeddings is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        self.embedding_norm: Normalizer | None = schedule.next_norm(dim, "dense")
        self.lstm = nn.LSTM(dim, width, num_layers=depth, batch_first=True)
        self.state_norm: Normalizer | None = schedule.next_norm(width, "dense")
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = x != PAD
        # A sequence is its tokens then padding; the datasets give every one a token.
        lengths = real.sum(1).clamp_min(1)
        embedded = self.embedding(x)
        if self.embedding_norm is not None:
            if embedded.is_meta:
                # Shape checks on the meta device cannot select by value; same shapes.
                embedded = self.embedding_norm(embedded.flatten(0, 1)).view_as(embedded)
            else:
                normed = torch.zeros_like(embedded)
                normed[real] = self.embedding_norm(embedded[real])
                embedded = normed
        outputs, _ = self.lstm(embedded)
        state = outputs[torch.arange(len(x), device=x.device), lengths - 1]
        if self.state_norm is not None:
            state = self.state_norm(state)
        return self.head(state)
