"""Which cells share one build check, and the stamp that says a plan's shapes build.

Imports no torch: the workflow computes the digest while planning (every dry run too) and
only when no stamp exists for it starts ``normstudy check-build`` (which needs the model
code, :mod:`normstudy.buildcheck`) in a separate process. So a cell that cannot be built
is refused before any job starts, and a plan already checked costs nothing more.

Cells that differ only in seed, optimiser settings or schedule build the same network,
so they are one check. Depth is left out too: a depth repeats blocks whose shapes do not
depend on it (the depth rules themselves, 6n+2 and so on, are checked for every cell
by :meth:`normstudy.catalog.ModelEntry.depth_error` while planning), and a 866-layer
ResNet takes seconds to build even on the meta device, where its 14-layer sibling takes
milliseconds. Each group is checked at its smallest depth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normstudy.config import canonical_json

BUILD_KEYS = (
    "dataset",
    "dataset_options",
    "val_size",
    "split_seed",
    "train_subset",
    "model",
    "width",
    "skip",
    "norm_every",
    "model_options",
    "norm",
    "norm_options",
    "gamma_init",
    "freeze",
    "batch_size",
    "full_batch",
    "probes",
)
DATA_ORDER_KEYS = ("dataset", "dataset_options", "val_size", "split_seed")
PACKAGE = Path(__file__).resolve().parent


@dataclass
class BuildGroup:
    """Cells that build the same network: the first study naming one, the cell checked
    (its grid point and config) and how many cells share it."""

    study: str
    point: Mapping[str, Any]
    config: Mapping[str, Any]
    cells: int = 1


def build_key(config: Mapping[str, Any]) -> str:
    return canonical_json({key: config[key] for key in BUILD_KEYS})


def build_groups(plan: Mapping[str, Any]) -> list[BuildGroup]:
    """The plan document's cells grouped by :func:`build_key`, each represented by its
    shallowest cell, ordered by dataset so that each dataset is loaded once."""
    groups: dict[str, BuildGroup] = {}
    for study, entry in plan["studies"].items():
        for cell, point in zip(entry["cells"], entry["points"], strict=True):
            config = plan["cells"][cell]
            key = build_key(config)
            group = groups.get(key)
            if group is None:
                groups[key] = BuildGroup(study, point, config)
                continue
            group.cells += 1
            if (config["depth"] or 0) < (group.config["depth"] or 0):
                group.study, group.point, group.config = study, point, config
    return sorted(
        groups.values(),
        key=lambda g: canonical_json({k: g.config[k] for k in DATA_ORDER_KEYS}),
    )


def code_digest() -> str:
    """Hash of the package's source: a change to a model or normalizer can change what
    builds, so it invalidates every stamp (a re-check takes seconds)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def builds_digest(plan: Mapping[str, Any]) -> str:
    """What a stamp certifies: these build groups, checked by this code."""
    keys = sorted(build_key(group.config) for group in build_groups(plan))
    text = canonical_json({"code": code_digest(), "groups": keys})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp_path(results: str | Path, digest: str) -> Path:
    return Path(results) / "checked_builds" / f"{digest}.txt"
