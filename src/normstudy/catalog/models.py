"""The models: the layers their normalizers follow, what inputs they read, their
default depth and width, their depth rule and options; and what ``init_from`` can start.

The builders (:mod:`normstudy.models`) register one per entry and take defaults and
options from here; the rules below run while planning, so a study that cannot build
fails before any job starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from normstudy.catalog.base import Catalog, Entry
from normstudy.catalog.datasets import DATASETS, DatasetEntry
from normstudy.catalog.normalizers import NORMALIZERS
from normstudy.catalog.options import Option, choice, positive

DepthRule = Callable[[int], "str | None"]


def any_depth(depth: int) -> str | None:
    return None


def six_n_plus_2(depth: int) -> str | None:
    """He et al. 2016 §4.2: three stages of n two-layer blocks, a stem and a head."""
    if depth < 8 or (depth - 2) % 6:
        return "must be 6n+2 with n >= 1 (e.g. 14, 20, 32, 56, 110, 218, 434, 866)"
    return None


def wide_resnet_depth(depth: int) -> str | None:
    """Zagoruyko & Komodakis 2016: 6n+4 with 1x1 shortcuts counted, 6n+2 without."""
    if depth < 8 or (depth - 2) % 6 not in (0, 2):
        return "must be 6n+2 (e.g. 26) or 6n+4 (e.g. 28) with n >= 1"
    return None


def vgg_depth(depth: int) -> str | None:
    if depth < 6:
        return "must be >= 6 (one conv per stage for 5 stages + head)"
    return None


SHORTCUTS = ("A", "B")
"""He et al. 2016 §3.3: A pads the strided identity with zero channels, B projects it
with a 1x1 conv (here followed by a normalizer)."""
SHORTCUT = Option(
    "B", "str", choice(*SHORTCUTS), "A: strided identity + zero channels; B: 1x1 conv + norm"
)


ParameterEstimate = Callable[[int, float, DatasetEntry, Mapping[str, Any]], float]
"""(depth, width, the dataset's entry, the model's options) -> about how many parameters:
sizes a training job's memory and time before anything is built, never a result. Close
to the built models at the usual widths (ResNet-20: 0.27 M, WRN-26-2: 1.5 M, VGG-16:
15 M)."""


def mlp_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    return data.input_size * width + (depth - 1) * width * width + width * data.classes


def resnet_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    return 0.27e6 * (depth - 2) / 18 * width * width


def wrn_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    return 1.47e6 * ((depth - 2) // 6) / 4 * (width / 2) ** 2


def vgg_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    return 9.2e6 * (depth - 1) / 10 * width * width


def lstm_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    return 8 * width * width * depth + 100 * width


def text_lstm_parameters(depth: int, width: float, data: DatasetEntry, options: Mapping) -> float:
    # The embedding (~27k words at Torri's scale) dominates; 4H(E + H) per LSTM layer.
    dim, vocab = options["embedding_dim"], data.vocab_size or 0
    return vocab * dim + 4 * width * (dim + width) + 4 * width * 2 * width * (depth - 1)


@dataclass(frozen=True)
class ModelEntry(Entry):
    """``layers``: the layer kind its normalizers follow (``conv`` or ``dense``);
    ``reads``: the dataset input kinds it takes; ``depth`` and ``width``: defaults (each
    builder's docstring says what they count); ``depth_rule``: why a depth is invalid;
    ``parameters``: its parameter count, estimated without building it."""

    layers: str = "conv"
    reads: tuple[str, ...] = ("image",)
    depth: int = 1
    width: float = 1
    depth_rule: DepthRule = any_depth
    parameters: ParameterEstimate = mlp_parameters

    def depth_error(self, depth: object) -> str | None:
        """Why ``depth`` is invalid for this model (the rule, with examples), or None."""
        if depth is None:
            return None
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            return f"{self.name} depth must be a positive integer; got {depth!r}"
        problem = self.depth_rule(depth)
        return None if problem is None else f"{self.name} depth {problem}; got {depth}"


MODELS: Catalog[ModelEntry] = Catalog(
    "model",
    [
        ModelEntry("mlp", "MLP", layers="dense", reads=("image", "vector"), depth=2, width=100),
        ModelEntry(
            "lstm",
            "LSTM on image rows",
            layers="dense",
            depth=1,
            width=128,
            parameters=lstm_parameters,
        ),
        ModelEntry(
            "lstm_text",
            "LSTM on token ids",
            {"embedding_dim": Option(200, "int", positive, "size of the word vectors")},
            layers="dense",
            reads=("tokens",),
            depth=1,
            width=102,
            parameters=text_lstm_parameters,
        ),
        ModelEntry(
            "resnet",
            "ResNet",
            {"shortcut": SHORTCUT},
            depth=20,
            width=1,
            depth_rule=six_n_plus_2,
            parameters=resnet_parameters,
        ),
        ModelEntry(
            "wrn",
            "WideResNet",
            {"shortcut": SHORTCUT},
            depth=26,
            width=2,
            depth_rule=wide_resnet_depth,
            parameters=wrn_parameters,
        ),
        ModelEntry(
            "vgg",
            "VGG",
            {"residual": Option(False, "bool", None, "residual connections around conv pairs")},
            depth=11,
            width=1.0,
            depth_rule=vgg_depth,
            parameters=vgg_parameters,
        ),
    ],
)


def compatibility_error(dataset: str, model: str, norm: str) -> str | None:
    """Why this dataset, model and normalizer cannot be built together, or None."""
    data, net, normalizer = DATASETS.get(dataset), MODELS.get(model), NORMALIZERS.get(norm)
    if data and net and data.inputs not in net.reads:
        return input_error(dataset, data.inputs, model)
    if net and normalizer and net.layers not in normalizer.layers:
        return (
            f"normalizer {norm!r} cannot follow the {net.layers} layers of model {model!r} "
            f"(it supports: {', '.join(normalizer.layers)})"
        )
    return None


def input_error(dataset: str, inputs: str, model: str) -> str:
    """The message for a model that cannot read a dataset's inputs, naming what can."""
    readers = ", ".join(sorted(name for name, entry in MODELS.items() if inputs in entry.reads))
    if inputs == "tokens":
        return (
            f"model {model!r} cannot read dataset {dataset!r} (token ids of texts); "
            f"text models: {readers}"
        )
    if "tokens" in MODELS[model].reads:
        text = ", ".join(sorted(DATASETS.where(inputs="tokens")))
        return (
            f"model {model!r} needs a text (token) dataset, not the {inputs} dataset "
            f"{dataset!r}; text datasets: {text}"
        )
    return (
        f"model {model!r} needs image inputs but dataset {dataset!r} is a {inputs} dataset "
        f"(models that read it: {readers})"
    )


@dataclass(frozen=True)
class InitFrom(Entry):
    """A starting point other than the random init; ``models``: those it is defined for
    (with ``norm: none``)."""

    models: tuple[str, ...] = ()

    def error(self, model: str, norm: str) -> str | None:
        if norm != "none":
            return (
                f"init_from {self.name!r} starts a network without normalization from its "
                f"Batch Norm twin; it needs norm 'none', not {norm!r}"
            )
        if model not in self.models:
            return (
                f"init_from {self.name!r} is not defined for model {model!r}; valid: "
                f"{', '.join(self.models)}"
            )
        return None


INIT_FROM: Catalog[InitFrom] = Catalog(
    "init_from value",
    [
        InitFrom(
            "bn_equivalent",
            "the Batch Norm network's equivalent point",
            models=("mlp",),
        )
    ],
)
"""``bn_equivalent`` is Morwani 2020 §3's equivalent point, folded for dense layers
(:mod:`normstudy.models.equivalent`)."""


def init_from_error(init_from: object, model: str, norm: str) -> str | None:
    """Why ``init_from`` cannot start this model and normalizer, or None."""
    if init_from is None:
        return None
    entry = INIT_FROM.get(init_from)  # type: ignore[arg-type]
    if entry is None:
        return f"init_from {init_from!r} is unknown; valid: null, {', '.join(sorted(INIT_FROM))}"
    return entry.error(model, norm)
