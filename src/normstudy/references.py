"""Reference outputs of every part that makes results, pinned beside its behaviour version.

Each part of :data:`normstudy.behaviour.VERSIONS` has a small deterministic CPU computation
here: a normalizer's forward on a fixed seeded input, a model's forward at a seeded init,
the first examples of a dataset, the trainable parameters of a freeze policy, a few
training steps, a probe on a tiny model. ``tests/reference_outputs.json`` holds their
outputs, rounded to :data:`DIGITS` significant digits, with the version they were made
at; ``tests/test_behaviour.py`` recomputes them, so that a change of output without a
version bump fails and names the part to bump. After bumping, regenerate with

    python -m normstudy.references --update            # every part
    python -m normstudy.references --update norm.lp    # some parts

(``PYTHONPATH=src`` in a checkout without an installed package).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normstudy import behaviour

DIGITS = 6
REL_TOL = 1e-4
ABS_TOL = 1e-6
"""Comparison tolerances: float noise between CPUs (other SIMD widths, other reduction
orders) moves a few training steps by about 1e-6 relative; a fix moves them far more."""
REFERENCE_FILE = Path(__file__).resolve().parents[2] / "tests" / "reference_outputs.json"
TINY = {
    "dataset": "digits",
    "model": "mlp",
    "depth": 2,
    "width": 8,
    "batch_size": 32,
    "steps": 3,
    "train_subset": 256,
    "val_size": 64,
    "augment": False,
}
"""The tiny cell of the training and probe references (a few steps on embedded digits)."""


def rounded(value: float) -> float:
    """``value`` to :data:`DIGITS` significant digits (non-finite values as they are)."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{DIGITS - 1}e}")


def tensor_summary(tensor: torch.Tensor, head: int = 4) -> dict[str, Any]:
    """Shape, sum, sum of squares and the first values of ``tensor``."""
    values = tensor.detach().double().flatten()
    return {
        "shape": list(tensor.shape),
        "sum": rounded(values.sum()),
        "sum_sq": rounded((values * values).sum()),
        "head": [rounded(v) for v in values[:head].tolist()],
    }


CHANNELS = 16
"""Channels of the normalizer references: divisible by Group Norm's default group count."""


def seeded_input(kind: str, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (6, CHANNELS, 3, 3) if kind == "conv" else (6, CHANNELS)
    return 1.5 + 2.0 * torch.randn(shape, generator=generator)


def norm_reference(name: str) -> dict[str, Any]:
    """Train-mode then eval-mode forward of the normalizer on each layer kind it supports,
    with its regularizer term (RegNorm), from a fixed seeded input."""
    from normstudy.catalog import NORMALIZERS
    from normstudy.norms import build_norm

    kinds = sorted(NORMALIZERS[name].layers)
    output = {}
    for kind in kinds:
        torch.manual_seed(0)
        module = build_norm(name, CHANNELS, kind)
        x = seeded_input(kind)
        if module is None:
            output[kind] = tensor_summary(x)
            continue
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.copy_(torch.linspace(0.5, 1.5, parameter.numel()).view_as(parameter))
        module.train()
        train = module(x)
        regularizer = module.regularizer()
        module.eval()
        evaluated = module(x + 0.25)
        output[kind] = {
            "train": tensor_summary(train),
            "eval": tensor_summary(evaluated),
            "regularizer": None if regularizer is None else rounded(regularizer),
        }
    return output


MODEL_SHAPES = {"mlp": (16,), "lstm": (1, 8, 8), "lstm_text": (7,)}
TEXT_VOCABULARY = 30
"""Vocabulary of the token model references (ids 1..29 drawn, 0 is padding)."""


def model_reference(name: str) -> dict[str, Any]:
    """Parameter counts and the forward of a small seeded model of ``name`` (with BN)."""
    from normstudy.models import BUILDERS, build_model
    from normstudy.norms import make_norm_factory

    spec = BUILDERS.get(name)
    shape = MODEL_SHAPES.get(name, (3, 16, 16))
    width = {"mlp": 8, "lstm": 8, "lstm_text": 8, "wrn": 1}.get(name, 0.25)
    tokens = {"vocab_size": TEXT_VOCABULARY, "embedding_dim": 6} if spec.tokens else {}
    torch.manual_seed(0)
    model = build_model(
        name,
        input_shape=shape,
        num_classes=3,
        norm=make_norm_factory("batch"),
        depth=spec.default_depth if name in ("mlp", "lstm", "lstm_text", "vgg") else 8,
        width=width,
        gamma_init="uniform",
        **tokens,
    )
    generator = torch.Generator().manual_seed(1)
    if spec.tokens:
        x = torch.randint(1, TEXT_VOCABULARY, (4, *shape), generator=generator)
        x[torch.arange(7) > torch.tensor([[6], [2], [4], [0]])] = 0  # lengths 7, 3, 5, 1
    else:
        x = torch.randn((4, *shape), generator=generator)
    model.train()
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "forward": tensor_summary(model(x)),
    }


def dataset_reference(name: str) -> dict[str, Any]:
    """Split sizes and the first training, validation and test examples of ``name``; a
    file-backed dataset reads a small seeded stand-in of its files' arrays (the tests have
    no downloads), through the same conversion and splitting."""
    from normstudy.data import load_dataset
    from normstudy.data import torchvision_sets as sets

    if name in sets.SOURCES:
        source = sets.SOURCES[name]
        fake = dataclasses.replace(
            source,
            open_split=lambda cls, root, train, download: FakeSplit(source, train),
            files=lambda cls, root: [],
        )
        original, sets.SOURCES[name] = sets.SOURCES[name], fake
        try:
            splits = load_dataset(name, val_size=8)
        finally:
            sets.SOURCES[name] = original
    elif name == "sentiment140":
        with tempfile.TemporaryDirectory() as directory:
            splits = load_dataset(
                name, data_dir=write_sentiment140_stand_in(Path(directory)), **SENTIMENT140_SMALL
            )
    else:
        splits = load_dataset(name, val_size=0.1)
    tokens = (
        {
            "vocab_size": splits.vocab_size,
            "embeddings": None
            if splits.embeddings is None
            else tensor_summary(splits.embeddings, 8),
        }
        if splits.tokens
        else {}
    )
    return {
        **tokens,
        "sizes": [len(splits.train_y), len(splits.val_y), len(splits.test_y)],
        "classes": splits.num_classes,
        "augment": bool(splits.augment),
        "train_x": tensor_summary(splits.train_x[:8]),
        "train_y": splits.train_y[:8].tolist(),
        "val_y": splits.val_y[:8].tolist(),
        "test_x": tensor_summary(splits.test_x[:8]),
        "test_y": splits.test_y[:8].tolist(),
    }


SENTIMENT140_SMALL = {"pool_size": 30, "test_size": 10, "val_size": 6, "glove": "tiny.txt"}
"""Sizes of the Sentiment140 reference, on :func:`write_sentiment140_stand_in`'s files."""


def write_sentiment140_stand_in(directory: Path) -> Path:
    """A 40-tweet Sentiment140-format CSV (latin-1, the real columns) and a 4-dimensional
    GloVe file under ``directory``, seeded: the reference reads them like the real files."""
    generator = np.random.default_rng(3)
    words = ["good", "bad", "café", "day", "@someone", "http://t.co/a", "&amp;", "meh", "!"]
    rows = []
    for i in range(40):
        tweet = " ".join(generator.choice(words, size=int(generator.integers(1, 8))))
        polarity = "4" if i % 2 else "0"
        rows.append(f'"{polarity}","{i}","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","u","{tweet}"')
    (directory / "sentiment140").mkdir()
    from normstudy.data.text import SENTIMENT140_FILE

    path = directory / "sentiment140" / SENTIMENT140_FILE
    path.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    (directory / "glove").mkdir()
    glove = [f"{w} " + " ".join(f"{v:.3f}" for v in generator.normal(size=4)) for w in words[:4]]
    (directory / "glove" / "tiny.txt").write_text("\n".join(glove) + "\n", encoding="utf-8")
    return directory


class FakeSplit:
    """What torchvision's dataset object exposes to the array conversion, seeded."""

    def __init__(self, source: Any, train: bool) -> None:
        count = 40 if train else 12
        generator = np.random.default_rng(1 if train else 2)
        channels, height, width = source.image_shape
        labels = np.arange(count) % source.num_classes
        if source.name in ("mnist", "fashion_mnist"):
            data = generator.integers(0, 256, (count, height, width), dtype=np.uint8)
            self.data, self.targets = torch.from_numpy(data), torch.from_numpy(labels)
        elif source.name == "svhn":
            self.data = generator.integers(0, 256, (count, channels, height, width), np.uint8)
            self.labels = labels
        else:
            self.data = generator.integers(0, 256, (count, height, width, channels), np.uint8)
            self.targets = labels.tolist()


def freeze_reference(name: str) -> dict[str, Any]:
    """Trainable parameter counts by role of a small model under policy ``name``."""
    from normstudy.freeze import RandomEntries, apply_freeze_policy, parameter_counts_by_role
    from normstudy.models import build_model
    from normstudy.norms import make_norm_factory

    torch.manual_seed(0)
    model = build_model(
        "resnet", input_shape=(3, 8, 8), num_classes=3, norm=make_norm_factory("batch"), depth=8
    )
    trainable = apply_freeze_policy(model, name, torch.Generator().manual_seed(0))
    counts = parameter_counts_by_role(model, trainable_only=True)
    # The role random_subset came after these references were pinned; a role that is
    # absent is no change of output, so it is left out rather than re-pinned as 0.
    output = {
        "trainable": {role: n for role, n in counts.items() if n or role != "random_subset"},
        "tensors": len(trainable),
    }
    chosen = [m.index for m in model.modules() if isinstance(m, RandomEntries)]
    if chosen:  # which entries ``random`` trains, not only how many
        output["chosen"] = tensor_summary(torch.cat(chosen))
    return output


def init_reference(name: str) -> dict[str, Any]:
    """The starting point ``init_from: name`` gives an MLP without normalization, from a
    seeded twin on a fixed seeded batch: its forward on that batch."""
    from normstudy.models import build_model
    from normstudy.models.equivalent import INITIALIZATIONS
    from normstudy.norms import make_norm_factory

    def mlp(norm: str) -> torch.nn.Module:
        torch.manual_seed(0)
        shape = MODEL_SHAPES["mlp"]
        factory = make_norm_factory(norm)
        return build_model("mlp", input_shape=shape, num_classes=3, norm=factory, depth=3)

    x = seeded_input("dense")
    model = mlp("none")
    INITIALIZATIONS.get(name)(model, lambda: mlp("batch"), x)
    return {"forward": tensor_summary(model(x))}


def cell_reference(overrides: dict[str, Any]) -> dict[str, Any]:
    """Curves, final metrics and probe records of the tiny cell with ``overrides``."""
    from normstudy.train import train_cell

    config = {**TINY, **overrides}
    with tempfile.TemporaryDirectory() as directory:
        summary = train_cell(config, Path(directory) / "cell", threads=1)
        import pyarrow.parquet as pq

        curves = pq.read_table(Path(directory) / "cell" / "curves.parquet").to_pylist()
        records = pq.read_table(Path(directory) / "cell" / "probes.parquet").to_pylist()
    output: dict[str, Any] = {
        "final": {key: rounded(value) for key, value in sorted(summary["final"].items())},
        "train_loss": [rounded(row["train_loss"]) for row in curves],
    }
    if summary["probe_errors"]:
        output["probe_errors"] = summary["probe_errors"]
    by_key: dict[str, float] = {}
    for record in records:
        if record["key"] in UNSTABLE_PROBE_KEYS:
            continue
        by_key[record["key"]] = by_key.get(record["key"], 0.0) + record["value"]
    if records:
        output["probe_sums"] = {key: rounded(value) for key, value in sorted(by_key.items())}
    return output


UNSTABLE_PROBE_KEYS = {"hvp_count"}
"""Probe record keys that count iterations of a solver, which float noise may change."""

PROBE_OPTIONS = {
    "hessian": {"n_samples": 64, "k": 2, "n_vectors": 1, "lanczos_steps": 8},
    "grad_confusion": {"batch_size": 16},
}


def probe_reference(name: str) -> dict[str, Any]:
    """The probe on the tiny cell at init, without training (``epochs: 0``), so that a
    change of the training loop does not show as a change of every probe."""
    entry = {
        "name": name,
        "every_epochs": 0,
        "at_init": True,
        "at_end": False,
        "options": PROBE_OPTIONS.get(name, {}),
    }
    return cell_reference({"probes": [entry], "epochs": 0, "steps": None})


def training_reference(name: str) -> dict[str, Any]:
    overrides = {
        "loop": {},
        "unshuffled_order": {"shuffle": False},
        "full_batch": {"full_batch": True, "steps": 2},
    }[name]
    return cell_reference(overrides)


def probe_helper_reference(name: str) -> dict[str, Any]:
    """The training loss and its gradients as probes see them, on a tiny RegNorm model
    (the loss includes its regularizer)."""
    from normstudy.config import resolve_cell_config
    from normstudy.probes import base
    from normstudy.probes.runner import ProbeRunner
    from normstudy.train import data_loss, inputs_for_model, prepare, training_losses

    config = resolve_cell_config({**TINY, "norm": "regnorm"})
    cell = prepare(config, data_dir=None, download=False, threads=1)
    runner = ProbeRunner(cell, [], loss_fn=data_loss, model_inputs=inputs_for_model)
    ctx = base.ProbeContext(
        model=cell.model,
        config=cell.config,
        probe_x=runner.probe_x,
        probe_y=runner.probe_y,
        loss_fn=lambda logits, y: training_losses(cell, logits, y)[1],
        roles=runner.roles,
        initial_params=runner.initial_params,
        lr=0.1,
        generator=cell.generators["probes"],
    )
    names = base.trainable_names(cell.model)
    loss, grads = base.loss_and_gradients(ctx, runner.probe_x[:32], runner.probe_y[:32], names)
    return {
        "loss": rounded(loss),
        "grad_sum_sq": {name: rounded((grads[name].double() ** 2).sum()) for name in names},
    }


COMPUTE: dict[str, Callable[[str], dict[str, Any]]] = {
    "training": training_reference,
    "dataset": dataset_reference,
    "model": model_reference,
    "norm": norm_reference,
    "freeze": freeze_reference,
    "init": init_reference,
    "probe": probe_reference,
    "probe_helper": probe_helper_reference,
}


def compute(part: str) -> dict[str, Any]:
    """The reference output of ``part`` (``kind.name``), computed now, on CPU, one thread."""
    kind, name = part.split(".", 1)
    if kind not in COMPUTE or name not in behaviour.VERSIONS.get(kind, {}):
        raise behaviour.VersionError(
            f"unknown part {part!r}; valid parts: {', '.join(behaviour.all_parts())}"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return json.loads(json.dumps(COMPUTE[kind](name)))
    finally:
        torch.set_num_threads(threads)


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected`` beyond the float tolerances."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if key not in expected or key not in actual:
                found.append(f"{where}{key}: only in {'actual' if key in actual else 'expected'}")
            else:
                found += differences(expected[key], actual[key], f"{where}{key}.")
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            problem
            for index, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in differences(e, a, f"{where}{index}.")
        ]
    numbers = (int, float)
    if (
        isinstance(expected, numbers)
        and isinstance(actual, numbers)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        if math.isnan(expected) and math.isnan(actual):
            return []
        if math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return []
    elif expected == actual:
        return []
    return [f"{where.rstrip('.')}: expected {expected!r}, got {actual!r}"]


def read_references(path: Path = REFERENCE_FILE) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def update(parts: list[str], path: Path = REFERENCE_FILE) -> dict[str, Any]:
    """Recompute ``parts`` (all if empty) at their current versions into ``path``; parts no
    longer in :data:`normstudy.behaviour.VERSIONS` are dropped."""
    from normstudy.io import write_text_atomic

    valid = behaviour.all_parts()
    references = {part: ref for part, ref in read_references(path).items() if part in valid}
    for part in parts or valid:
        references[part] = {"version": behaviour.version_of(part), "output": compute(part)}
        print(f"{part} v{references[part]['version']}", file=sys.stderr)
    write_text_atomic(path, json.dumps(references, indent=1, sort_keys=True) + "\n")
    return references


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m normstudy.references",
        description="Compute the reference output of parts (default: print them); --update "
        f"writes them with their current versions to {REFERENCE_FILE}.",
    )
    parser.add_argument("parts", nargs="*", help="parts, e.g. norm.batch_noisy (default: all)")
    parser.add_argument("--update", action="store_true", help="write the reference file")
    args = parser.parse_args(argv)
    try:
        if args.update:
            update(args.parts)
        else:
            for part in args.parts or behaviour.all_parts():
                print(json.dumps({part: compute(part)}, sort_keys=True))
    except behaviour.VersionError as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
