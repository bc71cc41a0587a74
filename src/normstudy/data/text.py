"""Token datasets for the sentiment task of Torri (2022, §3.1): tokenizer, vocabulary,
optional GloVe vectors, and the Sentiment140 tweets.

Torri classifies tweets as positive or negative with 90k training, 10k validation and 25k
test tweets; words "that appear at least twice in the training set" have their own
embedding and the others share "an Out of Vocabulary word embedding"; embeddings are
learned from scratch or initialised with GloVe (Pennington et al. 2014) vectors. The
paper's link to its tweet file is lost, so the tweets here are our stated choice:
Sentiment140 (Go, Bhayani & Huang 2009, "Twitter sentiment classification using distant
supervision"), the standard binary tweet-sentiment set.

The split follows the embedded datasets (:mod:`normstudy.data.embedded`): a fixed,
class-stratified test sample (:data:`TEST_SEED`, independent of ``split_seed``) so every
cell tests on the same tweets; then a fixed stratified pool of ``pool_size`` tweets from
the rest (:data:`POOL_SEED`); then the project's ``val_size`` (config key) is carved from
the pool with ``split_seed`` like every other dataset's validation split. Torri's 90k/10k
is the default ``pool_size`` 100,000 with the default ``val_size`` 0.1.

The vocabulary is built from the training split only (after the validation split is
carved), so no validation or test word gets its own embedding unless training has it.
"""

from __future__ import annotations

import csv
import html
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from normstudy.catalog import DATASETS
from normstudy.data.base import (
    OOV,
    PAD,
    DatasetNotFoundError,
    DatasetSplits,
    holdout_count,
    stratified_holdout,
)
from normstudy.data.registry import LOADERS

TEST_SEED = 20090101
POOL_SEED = 20220809
GLOVE_SEED = 14
SPECIAL_TOKENS = ("<pad>", "<oov>")
"""Tokens of ids :data:`PAD` and :data:`OOV` (never produced by :func:`tokenize`)."""

URL = re.compile(r"https?://\S+|www\.\S+")
USER = re.compile(r"@\w+")
TOKEN = re.compile(r"<url>|<user>|\w+")

SENTIMENT140_DIR = "sentiment140"
SENTIMENT140_FILE = "training.1600000.processed.noemoticon.csv"
SENTIMENT140_URL = "http://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
SENTIMENT140_LABELS = {"0": 0, "4": 1}
"""Sentiment140 polarity -> class (0 negative, 1 positive); its training file has no 2s."""
GLOVE_DIR = "glove"
GLOVE_URL = "https://nlp.stanford.edu/data/glove.twitter.27B.zip"


def tokenize(text: str) -> list[str]:
    """Lowercase words of ``text``: HTML entities decoded (Sentiment140 keeps ``&amp;``),
    URLs become ``<url>`` and @mentions ``<user>`` (the placeholders of GloVe's Twitter
    vectors, so they get pre-trained vectors too), and the rest is split on non-word
    characters (punctuation and emoticons are dropped)."""
    text = html.unescape(text).lower()
    text = URL.sub(" <url> ", text)
    text = USER.sub(" <user> ", text)
    return TOKEN.findall(text)


def build_vocabulary(texts: Sequence[list[str]], min_count: int) -> list[str]:
    """Words of ``texts`` occurring at least ``min_count`` times (Torri 2022, §3.1: twice),
    after the special tokens, most frequent first (ties alphabetically, so deterministic)."""
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1; got {min_count!r}")
    counts = Counter(word for words in texts for word in words)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIAL_TOKENS, *kept]


def encode(texts: Sequence[list[str]], vocabulary: Sequence[str], max_length: int) -> torch.Tensor:
    """int64 (N, max_length): each text's first ``max_length`` token ids, then :data:`PAD`.

    Unknown words are :data:`OOV`; a text without tokens becomes one :data:`OOV`, so every
    sequence has length >= 1 (the model reads its last hidden state at that length)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an integer >= 1; got {max_length!r}")
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = np.full((len(texts), max_length), PAD, dtype=np.int64)
    for row, words in enumerate(texts):
        tokens = [index.get(word, OOV) for word in words[:max_length]] or [OOV]
        ids[row, : len(tokens)] = tokens
    return torch.from_numpy(ids)


def glove_matrix(path: Path, vocabulary: Sequence[str]) -> torch.Tensor:
    """float32 (len(vocabulary), d) embeddings from a GloVe text file (``word v1 .. vd``
    per line; Pennington et al. 2014).

    A word found in the file gets its vector; the others, :data:`OOV` included, get
    N(0, s^2) entries with s the standard deviation of the found vectors' entries (so they
    are on GloVe's scale; seeded with :data:`GLOVE_SEED`, fixed data); :data:`PAD` is zeros
    (it never reaches the LSTM's read-out, see :class:`~normstudy.models.lstm_text`).
    """
    wanted = {word: i for i, word in enumerate(vocabulary) if i not in (PAD, OOV)}
    found: dict[int, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if dim is None:
                dim = len(rest.split())
            if word in wanted and wanted[word] not in found:
                vector = np.array(rest.split(), dtype=np.float32)
                if len(vector) != dim:
                    raise ValueError(
                        f"{path}:{number}: {len(vector)} values for {word!r}, expected {dim}"
                    )
                found[wanted[word]] = vector
    if not dim:
        raise ValueError(f"{path} holds no vectors (expected lines 'word v1 v2 ... vd')")
    rows = np.array(list(found.values())) if found else np.zeros((1, dim), np.float32)
    scale = float(rows.std()) or 1.0
    generator = np.random.default_rng(GLOVE_SEED)
    matrix = (scale * generator.standard_normal((len(vocabulary), dim))).astype(np.float32)
    matrix[PAD] = 0.0
    for i, vector in found.items():
        matrix[i] = vector
    return torch.from_numpy(matrix)


def token_splits(
    name: str,
    texts: Sequence[str],
    labels: np.ndarray,
    test_idx: np.ndarray,
    pool_idx: np.ndarray,
    *,
    val_size: int | float,
    split_seed: int,
    min_count: int,
    max_length: int,
    glove: Path | None,
) -> DatasetSplits:
    """Validation carved from the pool with ``split_seed`` (stratified, like
    :func:`~normstudy.data.base.splits_from_pools`), the vocabulary from the train split,
    and every split encoded with it."""
    pool_labels = labels[pool_idx]
    train_rel, val_rel = stratified_holdout(
        pool_labels, holdout_count(val_size, len(pool_idx)), split_seed
    )
    parts = {"train": pool_idx[train_rel], "val": pool_idx[val_rel], "test": test_idx}
    words = {split: [tokenize(texts[i]) for i in idx] for split, idx in parts.items()}
    vocabulary = build_vocabulary(words["train"], min_count)
    encoded = {split: encode(words[split], vocabulary, max_length) for split in parts}
    targets = {
        split: torch.from_numpy(labels[idx].astype(np.int64)) for split, idx in parts.items()
    }
    return DatasetSplits(
        name=name,
        train_x=encoded["train"],
        train_y=targets["train"],
        val_x=encoded["val"],
        val_y=targets["val"],
        test_x=encoded["test"],
        test_y=targets["test"],
        mean=(),
        std=(),
        num_classes=int(labels.max()) + 1,
        input_shape=(max_length,),
        augment=False,
        vocab_size=len(vocabulary),
        embeddings=None if glove is None else glove_matrix(glove, vocabulary),
    )


def read_sentiment140(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels of a Sentiment140 CSV: latin-1, no header, columns polarity
    (0 negative, 4 positive), id, date, query, user, text."""
    texts, labels = [], []
    with open(path, encoding="latin-1", newline="") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if len(row) != 6 or row[0] not in SENTIMENT140_LABELS:
                raise ValueError(
                    f"{path}:{number} is not a Sentiment140 row (polarity 0 or 4, id, date, "
                    f"query, user, text): {row[:6]!r}"
                )
            labels.append(SENTIMENT140_LABELS[row[0]])
            texts.append(row[5])
    return texts, np.array(labels, dtype=np.int64)


def glove_path(data_dir: Path, glove: str | None) -> Path | None:
    """``data_dir/glove/<glove>``, or None; a missing file says where to get it."""
    if glove is None:
        return None
    directory = Path(data_dir) / GLOVE_DIR
    path = directory / glove
    if not path.is_file():
        raise DatasetNotFoundError(
            f"GloVe {glove}",
            directory,
            [path],
            [path],
            f"Download {GLOVE_URL} (Pennington et al. 2014; e.g. glove.twitter.27B.200d.txt "
            f"inside) on a machine with internet access and put the .txt file at the path "
            f"above; or set the dataset option glove: null for embeddings learned from scratch.",
        )
    return path


def sentiment140_file(data_dir: Path) -> Path:
    directory = Path(data_dir) / SENTIMENT140_DIR
    path = directory / SENTIMENT140_FILE
    if not path.is_file():
        raise DatasetNotFoundError(
            "sentiment140",
            directory,
            [path],
            [path],
            f"Download {SENTIMENT140_URL} (Go, Bhayani & Huang 2009) on a machine with "
            f"internet access and unzip {SENTIMENT140_FILE} to the path above. It is not "
            f"downloaded automatically (download: true does not apply to it).",
        )
    return path


@LOADERS.register("sentiment140")
def load_sentiment140(
    *,
    data_dir: Path,
    download: bool,
    val_size: int | float,
    split_seed: int,
    pool_size: int,
    test_size: int,
    min_count: int,
    max_length: int,
    glove: str | None,
) -> DatasetSplits:
    """Sentiment140 tweets, binary (Torri 2022, §3.1; our choice of tweet file, see the
    module docstring): a fixed stratified ``test_size`` test sample (Torri: 25k) and
    ``pool_size`` train + validation pool (Torri: 90k + 10k, with ``val_size`` 0.1); words
    seen ``min_count`` times in training get an id (Torri: twice), others :data:`OOV`;
    tweets cut to ``max_length`` tokens (ours: 40, longer than nearly every tweet of 140
    characters). ``glove`` names a file under ``data_dir/glove/`` whose vectors initialise
    the embedding (Torri's second experiment), or null to learn them from scratch."""
    path = sentiment140_file(data_dir)
    vectors = glove_path(data_dir, glove)
    texts, labels = read_sentiment140(path)
    for what, size in (("pool_size", pool_size), ("test_size", test_size)):
        if size < 2:
            raise ValueError(f"{what} must be >= 2; got {size}")
    if pool_size + test_size > len(labels):
        raise ValueError(
            f"pool_size + test_size = {pool_size + test_size} exceeds the {len(labels)} "
            f"tweets of {path}"
        )
    rest, test_idx = stratified_holdout(labels, test_size, TEST_SEED)
    if pool_size < len(rest):
        rest = rest[stratified_holdout(labels[rest], pool_size, POOL_SEED)[1]]
    return token_splits(
        "sentiment140",
        texts,
        labels,
        test_idx,
        rest,
        val_size=val_size,
        split_seed=split_seed,
        min_count=min_count,
        max_length=max_length,
        glove=vectors,
    )


STAND_IN_VOCABULARY = DATASETS["sentiment140"].vocab_size
"""Vocabulary of the Sentiment140 stand-in: our estimate of the words seen twice in 90k
tweets (:class:`~normstudy.models.lstm.TextLSTMClassifier`), for costs only."""


def sentiment140_stand_in(
    *,
    val_size: int | float,
    split_seed: int,
    **options: object,
) -> DatasetSplits:
    """Random token ids with Sentiment140's split sizes, ``max_length`` and an estimated
    vocabulary (:data:`STAND_IN_VOCABULARY`), split like the real file would be: for the
    cost estimate and the planning-time build check where the CSV is not at hand (a step's
    cost does not depend on which words a tweet has). Never for results. Lengths are
    uniform in 1..``max_length``; no GloVe matrix (its dimension is checked at training)."""
    resolved = DATASETS["sentiment140"].resolve("dataset", options)
    pool_size, test_size = resolved["pool_size"], resolved["test_size"]
    max_length = resolved["max_length"]
    generator = np.random.default_rng(0)
    total = pool_size + test_size
    ids = generator.integers(2, STAND_IN_VOCABULARY, (total, max_length))
    lengths = generator.integers(1, max_length + 1, total)
    ids[np.arange(max_length) >= lengths[:, None]] = PAD
    labels = np.arange(total) % 2
    pool_idx, test_idx = np.arange(pool_size), np.arange(pool_size, total)
    train_rel, val_rel = stratified_holdout(
        labels[pool_idx], holdout_count(val_size, pool_size), split_seed
    )
    parts = {"train": pool_idx[train_rel], "val": pool_idx[val_rel], "test": test_idx}
    tensors = {
        f"{split}_{axis}": torch.from_numpy(np.ascontiguousarray(array[idx]).astype(np.int64))
        for split, idx in parts.items()
        for axis, array in (("x", ids), ("y", labels))
    }
    return DatasetSplits(
        name="sentiment140",
        **tensors,
        mean=(),
        std=(),
        num_classes=2,
        input_shape=(max_length,),
        augment=False,
        vocab_size=STAND_IN_VOCABULARY,
    )
