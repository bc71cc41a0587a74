"""Behaviour versions: which version of each part of the code made a cell's numbers.

A cell's id hashes its config (:func:`normstudy.grid.cell_id`); a fix that changes what
the code computes for the same config would otherwise leave finished cells with the old
numbers and let the tables mix old and new code silently. So every part that makes
results carries a version here, which a change that alters results must bump:

- ``training.loop`` (every cell), ``training.unshuffled_order`` (cells with ``shuffle:
  false``, not full batch), ``training.full_batch`` (full-batch gradient descent);
- ``dataset.<name>``, ``model.<name>``, ``norm.<name>``, ``freeze.<policy>``: the one of
  each the cell uses; ``init.<init_from>`` if it sets one;
- ``probe.<name>`` for each probe the cell runs, and ``probe_helper.loss_gradients`` for
  cells running a probe that differentiates the training loss (:data:`PROBE_HELPERS`).

A cell's id includes the versions of exactly the parts it uses that are above 1
(:func:`bumped_versions`): bumping ``norm.batch_noisy`` re-plans the noisy-BN cells and no
other, and at version 1 nothing changes, so ids made before versions existed stay valid.
``tests/test_behaviour.py`` pins each part's output (``tests/reference_outputs.json``,
:mod:`normstudy.references`), so that a change of output without a bump fails.

Imports no torch: the planner reads it at parse time.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from normstudy.catalog import DATASETS, FREEZE_POLICIES, INIT_FROM, MODELS, NORMALIZERS, PROBES

VERSIONS: dict[str, dict[str, int]] = {
    # unshuffled_order 2: every example in every epoch, the last partial batch kept
    "training": {"loop": 1, "unshuffled_order": 2, "full_batch": 1},
    "dataset": dict.fromkeys(DATASETS, 1),
    "model": dict.fromkeys(MODELS, 1),
    "norm": {
        **dict.fromkeys(NORMALIZERS, 1),
        "batch_noisy": 2,  # one shift and scale per channel and step (Santurkar et al.)
        "regnorm": 2,  # squared batch means per neuron, not per channel
        "preregnorm": 2,  # the same
    },
    "freeze": dict.fromkeys(FREEZE_POLICIES, 1),
    "probe": {
        **dict.fromkeys(PROBES, 1),
        "ics": 2,  # earlier layers moved by the optimizer's own update, not -lr * g
    },
    "probe_helper": {"loss_gradients": 1},
    "init": dict.fromkeys(INIT_FROM, 1),
}
"""Kind -> name -> version. Bump an entry (``"batch_noisy": 2``) when a change alters what
that part computes, then regenerate the references: ``python -m normstudy.references
--update`` (README, "When a fix changes results")."""

PROBE_HELPERS: dict[str, tuple[str, ...]] = {
    "loss_gradients": ("grad_confusion", "grad_norms", "hessian", "ics", "norms", "smoothness"),
}
"""Shared probe code -> the probes that use it: the training loss and its derivatives as
probes see them (``loss_fn``, ``loss_at``, ``loss_and_gradients`` in
:mod:`normstudy.probes.base`), so a fix there re-runs the cells of those probes only."""

OVERRIDES_VARIABLE = "NORMSTUDY_VERSION_OVERRIDES"
"""Test hook only: a JSON mapping ``{"norm.batch_noisy": 2}`` that replaces versions of
:data:`VERSIONS` in this process and its children (a Snakemake run and its jobs), so a test
can see what a bump re-plans without editing this file. Never set it for real results."""

IDENTITY_KEY = "_versions"
"""Where bumped versions enter the hashed identity of a cell; no config key starts with _."""


class VersionError(ValueError):
    """An unknown part or a malformed override; the message lists the valid parts."""


def all_parts() -> list[str]:
    """Every part name, ``kind.name``, sorted."""
    return sorted(f"{kind}.{name}" for kind, entries in VERSIONS.items() for name in entries)


@functools.lru_cache(maxsize=8)
def _overrides(text: str) -> dict[str, int]:
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except ValueError as error:
        raise VersionError(f"{OVERRIDES_VARIABLE} is not valid JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise VersionError(f"{OVERRIDES_VARIABLE} must be a JSON object; got {text!r}")
    valid = set(all_parts())
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise VersionError(
            f"{OVERRIDES_VARIABLE} names unknown part(s) {', '.join(unknown)}; valid parts: "
            f"{', '.join(sorted(valid))}"
        )
    for part, version in overrides.items():
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise VersionError(f"{OVERRIDES_VARIABLE}: {part} must be a positive integer")
    return overrides


def current_versions() -> dict[str, int]:
    """Part -> its version now (:data:`VERSIONS`, with the test hook's overrides)."""
    # A copy: the planner asks twice per cell, and callers may edit what they get.
    return dict(_versions_with(os.environ.get(OVERRIDES_VARIABLE, "")))


@functools.lru_cache(maxsize=8)
def _versions_with(overrides: str) -> dict[str, int]:
    versions = {
        f"{kind}.{name}": version
        for kind, entries in VERSIONS.items()
        for name, version in entries.items()
    }
    versions.update(_overrides(overrides))
    return versions


def version_of(part: str) -> int:
    versions = current_versions()
    if part not in versions:
        raise VersionError(f"unknown part {part!r}; valid parts: {', '.join(sorted(versions))}")
    return versions[part]


def part_names(config: Mapping[str, Any]) -> list[str]:
    """The parts whose code a resolved cell config runs."""
    parts = [
        "training.loop",
        f"dataset.{config['dataset']}",
        f"model.{config['model']}",
        f"norm.{config['norm']}",
        f"freeze.{config['freeze']}",
    ]
    if config.get("init_from"):
        parts.append(f"init.{config['init_from']}")
    if config["full_batch"]:
        parts.append("training.full_batch")
    elif not config["shuffle"]:
        parts.append("training.unshuffled_order")
    probes = {probe_name(entry) for entry in config.get("probes") or []}
    probes.discard(None)
    parts.extend(f"probe.{name}" for name in probes)
    for helper, users in PROBE_HELPERS.items():
        if probes & set(users):
            parts.append(f"probe_helper.{helper}")
    return sorted(parts)


def probe_name(entry: object) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
        return entry["name"]
    return None


def parts_used(config: Mapping[str, Any]) -> dict[str, int]:
    """Part -> current version, for the parts a resolved cell config uses (what a cell
    records in its ``summary.json`` as ``behaviour_versions``)."""
    versions = current_versions()
    used = {}
    for part in part_names(config):
        if part not in versions:
            raise VersionError(
                f"the cell uses {part!r}, which has no version; valid parts: "
                f"{', '.join(sorted(versions))}"
            )
        used[part] = versions[part]
    return used


def bumped_versions(config: Mapping[str, Any]) -> dict[str, int]:
    """The versions above 1 of the parts the cell uses: what its id hashes besides its
    non-default values (version 1 everywhere leaves ids made before versions unchanged).
    An unknown name counts as version 1 here: the planner reports it with the valid names."""
    versions = current_versions()
    bumped = {part: versions.get(part, 1) for part in part_names(config)}
    return {part: version for part, version in bumped.items() if version > 1}


def recorded_versions(config: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, int]:
    """The versions a finished cell was made by: its summary's record, or version 1 of every
    part it uses for cells finished before versions were recorded."""
    recorded = summary.get("behaviour_versions")
    if isinstance(recorded, Mapping):
        return dict(recorded)
    return dict.fromkeys(part_names(config), 1)


def outdated_parts(
    config: Mapping[str, Any], summary: Mapping[str, Any]
) -> dict[str, tuple[int, int]]:
    """Part -> (version the cell was made by, current version), for every part that changed."""
    now = parts_used(config)
    made = recorded_versions(config, summary)
    return {part: (made.get(part, 1), now[part]) for part in now if made.get(part, 1) != now[part]}


def describe_outdated(changed: Mapping[str, tuple[int, int]]) -> str:
    return ", ".join(f"{part} v{old} (now v{new})" for part, (old, new) in sorted(changed.items()))


def mixed_versions(records: list[Mapping[str, int]]) -> dict[str, list[int]]:
    """Part -> the different versions it has among ``records`` (only parts with several):
    cells that must not be compared or pooled without saying so."""
    seen: dict[str, set[int]] = {}
    for record in records:
        for part, version in record.items():
            seen.setdefault(part, set()).add(version)
    return {part: sorted(versions) for part, versions in seen.items() if len(versions) > 1}
