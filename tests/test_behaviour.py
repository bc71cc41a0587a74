"""Behaviour versions: every part has one, its output is pinned, and a bump re-plans exactly
the cells that use the part (normstudy.behaviour, normstudy.references)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from normstudy import behaviour, references
from normstudy.config import resolve_cell_config
from normstudy.grid import cell_id, data_key, plan_studies

REPO = Path(__file__).resolve().parents[1]
PINNED = references.read_references()
UPDATE = "python -m normstudy.references --update"


@pytest.fixture
def bump(monkeypatch):
    """Set versions through the documented test hook, as a Snakemake subprocess sees them."""

    def set_versions(**versions: int) -> None:
        overrides = {part.replace("__", "."): v for part, v in versions.items()}
        monkeypatch.setenv(behaviour.OVERRIDES_VARIABLE, json.dumps(overrides))

    return set_versions


@pytest.fixture
def all_at_1(bump):
    """Every part at version 1, as before any fix was versioned (tests that pin old ids)."""
    bump(**{part.replace(".", "__"): 1 for part in behaviour.all_parts()})


def next_version(part: str) -> int:
    return behaviour.version_of(part) + 1


def test_every_kind_of_part_has_a_reference_and_versions_are_positive_ints():
    versions = behaviour.VERSIONS
    assert set(versions) == set(references.COMPUTE)
    for kind, entries in versions.items():
        for name, version in entries.items():
            assert isinstance(version, int) and not isinstance(version, bool) and version >= 1, (
                kind,
                name,
            )


def test_probe_helper_users_are_the_probes_that_differentiate_the_loss():
    """The probes whose module calls the shared loss code are exactly the helper's users."""
    import importlib
    import inspect

    from normstudy.probes import PROBE_CLASSES

    uses_loss = re.compile(r"\b(loss_at|loss_and_gradients|gradients|loss_fn)\(")
    users = set()
    for name in PROBE_CLASSES.names():
        source = inspect.getsource(importlib.import_module(PROBE_CLASSES.get(name).__module__))
        if uses_loss.search(source):
            users.add(name)
    assert users == set(behaviour.PROBE_HELPERS["loss_gradients"])


def config(**overrides):
    return resolve_cell_config(overrides)


def test_parts_used_names_exactly_the_parts_a_cell_runs():
    probes = ["propagation", {"name": "hessian", "options": {"k": 2}}]
    used = behaviour.parts_used(config(norm="batch_noisy", shuffle=False, probes=probes))
    parts = [
        "dataset.digits",
        "freeze.all",
        "model.mlp",
        "norm.batch_noisy",
        "probe.hessian",
        "probe.propagation",
        "probe_helper.loss_gradients",
        "training.loop",
        "training.unshuffled_order",
    ]
    assert used == {part: behaviour.version_of(part) for part in parts}
    assert "training.unshuffled_order" not in behaviour.parts_used(config())
    full = behaviour.parts_used(config(full_batch=True, shuffle=False))
    assert "training.full_batch" in full and "training.unshuffled_order" not in full
    only_propagation = behaviour.parts_used(config(probes=["propagation"]))
    assert "probe_helper.loss_gradients" not in only_propagation


def test_versions_at_1_leave_every_cell_id_as_it_was(all_at_1):
    """Ids from before versions existed (pinned here) stay, so existing results stay valid."""
    assert cell_id(config()) == "digits-mlp-batch-all-s0-44136fa355"
    assert cell_id(config(norm="batch_noisy")) == "digits-mlp-batch_noisy-all-s0-456ed521fb"
    assert data_key(config()) == "digits-" + data_key(config()).split("-")[1]
    assert behaviour.bumped_versions(config(probes=["ics"], shuffle=False)) == {}


def test_a_bump_changes_the_ids_of_exactly_the_cells_using_the_part(bump):
    """Over both scales of the real config: bumping noisy BN changes the noisy-BN cells only."""
    workflow = yaml.safe_load((REPO / "config.yaml").read_text())
    before = {s: plan_studies({**workflow, "scale": s}).cells for s in ("demo", "paper")}
    bump(norm__batch_noisy=next_version("norm.batch_noisy"))
    for scale, cells in before.items():
        after = plan_studies({**workflow, "scale": scale}).cells
        changed = {
            cell_id(cfg) != old for old, cfg in cells.items() if cfg["norm"] == "batch_noisy"
        }
        kept = {old in after for old, cfg in cells.items() if cfg["norm"] != "batch_noisy"}
        assert changed == {True} and kept == {True}, scale
        assert len(after) == len(cells)


@pytest.mark.parametrize(
    ("part", "selects"),
    [
        ("training.unshuffled_order", lambda c: not c["shuffle"] and not c["full_batch"]),
        ("norm.regnorm", lambda c: c["norm"] == "regnorm"),
        ("norm.preregnorm", lambda c: c["norm"] == "preregnorm"),
        ("probe.ics", lambda c: "ics" in {behaviour.probe_name(p) for p in c["probes"]}),
        (
            "probe_helper.loss_gradients",
            lambda c: (
                {behaviour.probe_name(p) for p in c["probes"]}
                & set(behaviour.PROBE_HELPERS["loss_gradients"])
            ),
        ),
    ],
)
def test_each_planned_fix_re_plans_only_its_cells(bump, part, selects):
    """The fixes under way each have their own part: only the cells they touch re-run."""
    workflow = yaml.safe_load((REPO / "config.yaml").read_text())
    cells = plan_studies({**workflow, "scale": "paper"}).cells
    bump(**{part.replace(".", "__"): next_version(part)})
    renamed = {old for old, cfg in cells.items() if cell_id(cfg) != old}
    assert renamed == {old for old, cfg in cells.items() if selects(cfg)}


def test_a_dataset_bump_also_renames_its_data_cache(bump):
    """A loader fix must not reuse the tensor cache the old loader wrote."""
    before = data_key(config(dataset="mnist5k"))
    other = data_key(config())
    bump(dataset__mnist5k=2)
    assert data_key(config(dataset="mnist5k")) != before
    assert data_key(config()) == other


def test_unknown_parts_in_the_test_hook_fail_with_the_valid_parts(bump):
    bump(norm__magic=2)
    with pytest.raises(behaviour.VersionError, match="valid parts: .*norm.batch_noisy"):
        behaviour.current_versions()


def test_outdated_parts_compares_the_record_with_now(all_at_1, bump):
    cfg = config(norm="batch_noisy")
    summary = {"behaviour_versions": behaviour.parts_used(cfg)}
    assert behaviour.outdated_parts(cfg, summary) == {}
    assert behaviour.outdated_parts(cfg, {}) == {}  # cells from before versions: all v1
    bump(norm__batch_noisy=3)
    assert behaviour.outdated_parts(cfg, summary) == {"norm.batch_noisy": (1, 3)}
    assert behaviour.outdated_parts(cfg, {}) == {"norm.batch_noisy": (1, 3)}


def test_mixed_versions_names_the_part_with_several():
    records = [{"norm.batch": 1, "training.loop": 1}, {"norm.batch": 2, "training.loop": 1}]
    assert behaviour.mixed_versions(records) == {"norm.batch": [1, 2]}
    assert behaviour.mixed_versions(records[:1]) == {}


def test_the_reference_file_covers_every_part_and_no_other():
    assert sorted(PINNED) == behaviour.all_parts(), f"regenerate the references: {UPDATE}"


@pytest.mark.parametrize("part", behaviour.all_parts())
def test_reference_output_is_unchanged_unless_the_version_was_bumped(part):
    """A change of a part's output needs a bump of its version (then regenerate)."""
    pinned = PINNED.get(part)
    assert pinned is not None, f"{part} has no reference output: run `{UPDATE} {part}`"
    version = behaviour.version_of(part)
    if pinned["version"] != version:
        pytest.fail(
            f"{part} is at version {version} but its reference was made at version "
            f"{pinned['version']}: regenerate it with `{UPDATE} {part}` and commit "
            "tests/reference_outputs.json"
        )
    problems = references.differences(pinned["output"], references.compute(part))
    assert not problems, (
        f"the output of {part} changed without a version bump:\n  "
        + "\n  ".join(problems[:10])
        + f"\nIf the change is intended, bump {part}'s version in normstudy.behaviour.VERSIONS "
        f"(cells using it are then planned again under new ids) and regenerate its reference "
        f"with `{UPDATE} {part}`; if not, it is a regression. (A reference also runs other "
        "parts: a tiny digits/mlp/batch cell, a BN model. If the change is in one of those, "
        "its own reference fails too: bump that part, then regenerate both.)"
    )


def test_reference_comparison_fails_on_a_change_and_passes_float_noise():
    pinned = PINNED["norm.batch"]["output"]
    noisy = json.loads(json.dumps(pinned), parse_float=lambda s: float(s) * (1 + 1e-6))
    assert references.differences(pinned, noisy) == []
    changed = json.loads(json.dumps(pinned), parse_float=lambda s: float(s) * 1.01 + 1e-3)
    assert references.differences(pinned, changed)


def test_a_changed_normalizer_fails_its_reference(monkeypatch):
    """What a fix of noisy BN (here: other noise) does to the check: its reference differs."""
    from normstudy.norms import NoisyBatchNorm

    init_noise = NoisyBatchNorm.init_noise
    monkeypatch.setattr(
        NoisyBatchNorm,
        "init_noise",
        lambda self, noise_mean, noise_var: init_noise(self, 0.6, noise_var),
    )
    pinned = PINNED["norm.batch_noisy"]["output"]
    assert references.differences(pinned, references.compute("norm.batch_noisy"))
    assert not references.differences(
        PINNED["norm.batch"]["output"], references.compute("norm.batch")
    )
