"""Studies -> cells: expansion, stable ids, validation of bad configs (no torch needed)."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from normstudy.catalog.datasets import EMBEDDED_DATASETS
from normstudy.config import DEFAULTS
from normstudy.grid import StudyError, cell_id, data_key, job_resources, plan_studies

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
RESOURCES = {
    "threads": 1,
    "gpu": 0,
    "mem_mb": 1000,
    "mem_mb_per_mparam": 100,
    "runtime": 5,
    "minutes_per_gstep": 1.0,
}


def workflow_config(**studies) -> dict:
    return {
        "scale": "demo",
        "data_dir": "data",
        "download": False,
        "resources": RESOURCES,
        "ols": {"d": [2], "kappa": [10], "lr": [0.1], "steps": 5},
        "defaults": {"epochs": 1, "model": "mlp", "width": 16},
        "studies": studies
        or {"toy": {"grid": {"norm": ["batch", "layer"], "seed": [0, 1]}, "set": {"lr": 0.05}}},
    }


def test_grid_is_the_cartesian_product_with_overrides():
    plan = plan_studies(workflow_config())
    study = plan.studies["toy"]
    assert study.axes == ["norm", "seed"]
    assert [p for p in study.points] == [
        {"norm": "batch", "seed": 0},
        {"norm": "batch", "seed": 1},
        {"norm": "layer", "seed": 0},
        {"norm": "layer", "seed": 1},
    ]
    assert all(c.config["lr"] == 0.05 and c.config["epochs"] == 1 for c in study.cells)
    assert len(set(plan.cells)) == 4


def test_demo_variant_replaces_axes_and_settings():
    study = {
        "grid": {"depth": [14, 20, 32], "seed": [0, 1, 2]},
        "set": {"dataset": "cifar10", "model": "resnet", "epochs": 160},
        "demo": {"grid": {"depth": [8]}, "set": {"dataset": "digits", "epochs": 2}},
    }
    demo = plan_studies(workflow_config(s=study))
    paper = plan_studies({**workflow_config(s=study), "scale": "paper"})
    assert len(demo.cells) == 3 and len(paper.cells) == 9
    assert {c["dataset"] for c in demo.cells.values()} == {"digits"}
    assert {c["epochs"] for c in paper.cells.values()} == {160}


def test_cell_ids_are_stable_readable_and_shared():
    config = workflow_config(
        a={"grid": {"seed": [0, 1]}},
        b={"grid": {"seed": [1, 2]}},
    )
    plan = plan_studies(config)
    assert len(plan.cells) == 3
    assert plan.study_cell_ids("a")[1] == plan.study_cell_ids("b")[0]
    alone = plan_studies(workflow_config(a={"grid": {"seed": [0, 1]}}))
    assert alone.study_cell_ids("a") == plan.study_cell_ids("a")
    first = plan.study_cell_ids("a")[0]
    assert first.startswith("digits-mlp-batch-all-s0-")


def test_explicit_default_values_do_not_change_ids():
    resolved = copy.deepcopy(DEFAULTS)
    bare = cell_id(resolved)
    assert cell_id({**resolved, "lr": 0.2}) != bare
    explicit = plan_studies(
        {**workflow_config(), "defaults": {**DEFAULTS, "epochs": 1, "model": "mlp", "width": 16}}
    )
    assert set(explicit.cells) == set(plan_studies(workflow_config()).cells)


def test_dotted_axes_set_options():
    study = {
        "grid": {"dataset_options.n_per_class": [5, 10]},
        "set": {"dataset": "gaussian_noise", "model": "mlp", "depth": 1},
    }
    plan = plan_studies(workflow_config(noise=study))
    options = [c.config["dataset_options"] for c in plan.studies["noise"].cells]
    assert options == [{"n_per_class": 5}, {"n_per_class": 10}]
    keys = {data_key(c.config) for c in plan.studies["noise"].cells}
    assert len(keys) == 2


def test_data_key_remembered_by_settings_matches_a_fresh_computation():
    # The key is remembered by the repr of the data settings: insertion order, 1 vs 1.0 and
    # True vs 1 must still give exactly what hashing the canonical JSON gives.
    from normstudy import behaviour
    from normstudy.grid import _computed_data_key

    def fresh(config):
        return _computed_data_key(config, behaviour.version_of(f"dataset.{config['dataset']}"))

    base = {**DEFAULTS, "dataset": "gaussian_noise"}
    variants = [
        {**base, "dataset_options": {"n_per_class": 5, "dim": 3}},
        {**base, "dataset_options": {"dim": 3, "n_per_class": 5}},
        {**base, "dataset_options": {"n_per_class": 5.0, "dim": 3}},
        {**base, "dataset_options": {"n_per_class": True, "dim": 3}},
        {**base, "dataset_options": {"n_per_class": 5, "dim": 3}, "split_seed": 1},
    ]
    for config in variants + variants:
        assert data_key(config) == fresh(config)
    assert data_key(variants[0]) == data_key(variants[1])
    assert len({data_key(c) for c in variants}) == 4


def test_resources_grow_with_model_size():
    small = job_resources({**DEFAULTS, "model": "resnet", "depth": 20}, RESOURCES)
    large = job_resources({**DEFAULTS, "model": "resnet", "depth": 110}, RESOURCES)
    assert large["mem_mb"] > small["mem_mb"] and large["runtime"] > small["runtime"]
    assert small["threads"] == 1 and small["gpu"] == 0


BAD_STUDIES = [
    ({"grid": {"norm": ["batch", "magic"]}}, "norm 'magic' is unknown; valid: batch"),
    ({"grid": {"model": ["transformer"]}}, "model 'transformer' is unknown"),
    ({"grid": {"dataset": ["imagenet"]}}, "dataset 'imagenet' is unknown"),
    ({"grid": {"freeze": ["weights"]}}, "freeze 'weights' is unknown"),
    ({"grid": {"depth": [15]}, "set": {"model": "resnet"}}, "6n+2"),
    ({"grid": {"lrr": [0.1]}}, "unknown grid key 'lrr'"),
    ({"set": {"colour": "red"}}, "unknown set key 'colour'"),
    ({"grid": {"lr": [-0.1]}}, "'lr' = -0.1"),
    ({"grid": {"lr": []}}, "must be a non-empty list"),
    ({"grid": {"seed": [0, 0]}}, "repeats a value"),
    ({"grid": {"batch_size": ["big"]}}, "'batch_size' = 'big'"),
    ({"grid": {"norm": ["instance"]}}, "cannot follow the dense layers of model 'mlp'"),
    ({"set": {"model": "resnet", "dataset": "gaussian_noise"}}, "needs image inputs"),
    ({"grid": {"norm": ["none"]}, "set": {"freeze": "norm"}}, "but norm is 'none'"),
    ({"grid": {"norm": ["noisy_none"]}, "set": {"freeze": "gamma"}}, "norm is 'noisy_none'"),
    ({"grid": {"norm": ["none"]}, "set": {"freeze": "random"}}, "but norm is 'none'"),
    ({"set": {"freeze": "random", "norm": "weight"}}, "not defined for norm 'weight'; valid"),
    ({"set": {"freeze": "random", "model": "lstm"}}, "not defined for model 'lstm'; valid"),
    ({"grid": {"dataset": ["../../etc"]}}, "may only contain"),
    ({"grid": {"norm": ["batch; rm -rf ~"]}}, "may only contain"),
    ({"grid": {"lr.x": [1]}}, "only dataset_options, model_options, norm_options"),
    ({"grids": {"seed": [0]}}, "unknown key(s) grids"),
    ({"set": {"norm": "lp", "norm_options": {"p": 4}}}, "option 'p' = 4 must be 1, 2, 3 or 'inf'"),
    ({"grid": {"norm_options.momentum": [0.1, 0]}}, "'momentum' = 0 must be a number in (0, 1]"),
    ({"set": {"norm_options": {"groups": 4}}}, "'batch' has no option(s) groups"),
    ({"demo": {"grid": {"seed": [0]}, "epochs": 3}}, "unknown demo key(s) epochs"),
    ({"grid": {"seed": [0]}, "exclude": [{"norm": "none"}]}, "'norm' is not a grid axis"),
    ({"grid": {"seed": [0, 1]}, "exclude": [{"seed": 2}]}, "2 is not a level of 'seed'"),
    ({"grid": {"seed": [0]}, "exclude": [{"seed": 0}]}, "exclude drops every point"),
    ({"grid": {"seed": [0]}, "exclude": {"seed": 0}}, "exclude must be a list"),
    ({"grid": {"seed": [0]}, "when": [{"match": {"seed": 0}}]}, "exactly the keys match, set"),
    (
        {"grid": {"seed": [0]}, "when": [{"match": {"seed": 0}, "set": {"seed": 3}}]},
        "sets the grid axis seed",
    ),
    (
        {"grid": {"seed": [0]}, "when": [{"match": {"seed": 0}, "set": {"lr": -1}}]},
        "when[0]: config key 'lr' = -1",
    ),
    (
        {"grid": {"seed": [0]}, "when": [{"match": {"seed": 0}, "set": {"lrr": 1}}]},
        "unknown when[0].set key 'lrr'",
    ),
]


@pytest.mark.parametrize(("study", "message"), BAD_STUDIES)
def test_bad_studies_fail_with_clear_messages(study, message):
    with pytest.raises(StudyError) as info:
        plan_studies(workflow_config(bad=study))
    assert message in str(info.value)
    assert "study 'bad'" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale": "huge"}, "'huge' is not one of"),
        ({"studies": {}}, "should be non-empty"),
        ({"studies": {"bad name": {"grid": {}}}}, "does not match"),
        ({"studies": {"../x": {"grid": {}}}}, "does not match"),
        ({"results": "../elsewhere"}, "should not be valid"),
        ({"results": "/"}, "should not be valid"),
        ({"results": "."}, "should not be valid"),
        ({"results": "./"}, "should not be valid"),
        ({"resources": {**RESOURCES, "threads": 0}}, "less than the minimum"),
        ({"download": "yes"}, "is not of type 'boolean'"),
        ({"unknown_top_key": 1}, "Additional properties are not allowed"),
    ],
)
def test_schema_rejects_bad_workflow_configs(change, message):
    config = {**workflow_config(), **change}
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(config, SCHEMA)
    assert message in str(info.value.message)


def test_scales_restricts_a_study_to_the_listed_scales():
    studies = {
        "both": {"grid": {"seed": [0]}},
        "paper_only": {"grid": {"seed": [0, 1]}, "set": {"lr": 0.2}, "scales": ["paper"]},
    }
    demo = plan_studies(workflow_config(**studies))
    paper = plan_studies({**workflow_config(**studies), "scale": "paper"})
    assert list(demo.studies) == ["both"] and len(demo.cells) == 1
    assert list(paper.studies) == ["both", "paper_only"] and len(paper.cells) == 3
    with pytest.raises(StudyError, match="'paper_only' runs only at scale paper, not at 'demo'"):
        plan_studies(workflow_config(**studies), only=["paper_only"])
    with pytest.raises(StudyError, match="scales must be a non-empty list of demo, paper"):
        plan_studies(workflow_config(bad={"grid": {"seed": [0]}, "scales": ["huge"]}))


def test_unknown_study_in_selection():
    with pytest.raises(StudyError, match="unknown study nope; valid studies: toy"):
        plan_studies(workflow_config(), only=["nope"])


def test_the_shipped_config_is_valid_at_both_scales():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    jsonschema.validate(config, SCHEMA)
    demo = plan_studies(config)
    paper = plan_studies({**config, "scale": "paper"})
    assert len(paper.cells) > len(demo.cells) > 0
    assert {c["dataset"] for c in demo.cells.values()} <= set(EMBEDDED_DATASETS)


def test_new_hyperparameter_with_default_value_keeps_ids(monkeypatch):
    resolved = {**DEFAULTS, "lr": 0.3}
    before = cell_id(resolved)
    monkeypatch.setitem(DEFAULTS, "new_knob", 3)
    assert cell_id({**resolved, "new_knob": 3}) == before
    assert cell_id({**resolved, "new_knob": 4}) != before


def test_exclude_drops_matching_points_and_when_sets_values_where_it_matches():
    study = {
        "grid": {"norm": ["batch", "none"], "freeze": ["all", "norm"], "seed": [0, 1]},
        "exclude": [{"norm": "none", "freeze": "norm"}],
        "when": [
            {"match": {"freeze": "norm"}, "set": {"epochs": 7}},
            {"match": {"norm": ["none"], "seed": [1]}, "set": {"lr": 0.5}},
        ],
    }
    plan = plan_studies(workflow_config(s=study))
    cells = plan.studies["s"].cells
    points = plan.studies["s"].points
    assert len(cells) == 6
    assert {"norm": "none", "freeze": "norm", "seed": 0} not in points
    for point, cell in zip(points, cells, strict=True):
        assert cell.config["epochs"] == (7 if point["freeze"] == "norm" else 1)
        assert cell.config["lr"] == (0.5 if point["norm"] == "none" and point["seed"] == 1 else 0.1)
    from normstudy.grid import cell_counts

    assert cell_counts(workflow_config(s=study)) == {"s": 6}


def test_exclude_names_levels_of_either_scale():
    study = {
        "grid": {"width": [16, 32], "seed": [0]},
        "demo": {"grid": {"width": [8, 16]}},
        "exclude": [{"width": [32, 8]}],
    }
    demo = plan_studies(workflow_config(s=study))
    paper = plan_studies({**workflow_config(s=study), "scale": "paper"})
    assert [p["width"] for p in demo.studies["s"].points] == [16]
    assert [p["width"] for p in paper.studies["s"].points] == [16]


def test_when_keeps_the_ids_of_cells_it_does_not_touch():
    plain = {"grid": {"freeze": ["all", "norm"], "seed": [0]}}
    with_when = {**plain, "when": [{"match": {"freeze": "norm"}, "set": {"epochs": 3}}]}
    before = plan_studies(workflow_config(s=plain)).studies["s"].cells
    after = plan_studies(workflow_config(s=with_when)).studies["s"].cells
    assert before[0].id == after[0].id and before[1].id != after[1].id


def test_a_demo_when_replaces_the_studys_at_demo_scale_only():
    study = {
        "grid": {"freeze": ["all", "norm"], "seed": [0]},
        "when": [{"match": {"freeze": "norm"}, "set": {"epochs": 200}}],
        "demo": {"when": [{"match": {"freeze": "norm"}, "set": {"epochs": 3}}]},
    }
    demo = plan_studies(workflow_config(s=study))
    paper = plan_studies({**workflow_config(s=study), "scale": "paper"})
    assert [c.config["epochs"] for c in demo.studies["s"].cells] == [1, 3]
    assert [c.config["epochs"] for c in paper.studies["s"].cells] == [1, 200]


def test_a_typo_in_the_when_a_demo_replaces_fails_at_demo_scale_too():
    study = {
        "grid": {"freeze": ["all", "norm"], "seed": [0]},
        "when": [{"match": {"freeze": "nrom"}, "set": {"epochs": 200}}],
        "demo": {"when": [{"match": {"freeze": "norm"}, "set": {"epochs": 3}}]},
    }
    with pytest.raises(StudyError, match="'nrom' is not a level of 'freeze'"):
        plan_studies(workflow_config(s=study))


def test_a_long_list_of_bad_grid_values_says_how_many_it_leaves_out():
    """800 bad values: the first 20 are listed, then how many more (before, the listing
    stopped at 20 without saying so)."""
    config = {"defaults": {}, "studies": {"s": {"grid": {"epochs": [-i for i in range(1, 801)]}}}}
    with pytest.raises(StudyError) as info:
        plan_studies(config)
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "... and 780 more errors like these", lines[-1]


def test_the_cost_of_a_refused_grid_is_worded_to_its_size():
    from normstudy.grid import planning_cost, scale_problem

    assert planning_cost(24) == "1 s in about 1 MB"
    assert planning_cost(10_000) == "55 s in about 400 MB"
    assert planning_cost(1_000_000) == "92 min in about 40.0 GB"
    assert "about 1 s in about 1 MB" in scale_problem({"a": 24}, 10)


def test_a_study_name_too_long_for_a_file_name_is_refused():
    """A 251-character name passed planning, trained its cells, then failed in a figure
    ("File name too long"); names are at most 64 characters."""
    with pytest.raises(StudyError, match="at most 64 characters"):
        plan_studies({"defaults": {}, "studies": {"s" * 65: {"grid": {"seed": [0]}}}})
    assert plan_studies({"defaults": {}, "studies": {"s" * 64: {"grid": {"seed": [0]}}}})
