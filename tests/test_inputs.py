"""Bad input is refused while planning, in one short message naming where, with exit status 2."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time

import pytest
import yaml
from test_workflow import REPO, SNAKEMAKE, config_head

from normstudy.config import ConfigError, resolve_cell_config
from normstudy.inputcheck import InputError, load_yaml, number_errors

BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
"""Nine lines that expand to 10**9 numbers."""


def test_duplicate_keys_are_refused_with_their_lines():
    text = "studies:\n  a:\n    grid: {seed: [0]}\n  b: {}\n  a:\n    grid: {seed: [1]}\n"
    with pytest.raises(InputError) as error:
        load_yaml(text, "config.yaml")
    assert str(error.value).startswith("config.yaml, line 5: key 'a' is given twice in studies")
    assert "first on line 2" in str(error.value)
    with pytest.raises(InputError, match="key 'lr' is given twice in defaults"):
        load_yaml("defaults:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n", "c.yaml")
    assert load_yaml("a: {x: 1}\nb: {x: 1}\n", "c.yaml") == {"a": {"x": 1}, "b": {"x": 1}}


def test_an_alias_bomb_is_refused_at_once():
    assert BOMB.count("\n") == 9
    start = time.perf_counter()
    with pytest.raises(InputError, match="expands to more than 200,000 YAML nodes"):
        load_yaml(BOMB, "c.yaml")
    assert time.perf_counter() - start < 1
    small = "a: &a [1, 2]\nb: [*a, *a]\n"
    assert load_yaml(small, "c.yaml") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "is not a number"),
        (math.inf, "is infinite"),
        (-math.inf, "is infinite"),
        (1e308, "absurdly large"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(value, problem):
    with pytest.raises(ConfigError, match=f"config key 'lr' = .* {problem}"):
        resolve_cell_config({"lr": value})
    with pytest.raises(ConfigError, match=f"'dataset_options.d' = .* {problem}"):
        resolve_cell_config({"dataset": "gaussian_noise", "dataset_options": {"d": value}})
    assert "written p: inf" in number_errors({"grid": {"norm_options.p": [1, math.inf]}})[0]
    assert number_errors({"norm_options": {"p": "inf"}, "lr": 1e15, "seed": 2**40}) == []
    assert number_errors({"grid": {"lr": [1, value]}})[0].startswith("key 'grid.lr[1]'")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "normstudy.cli", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: .nan\n", "'lr' = nan is not a number"),
        ("lr: .inf\n", "'lr' = inf is infinite"),
        ("lr: 1.0e+308\n", "absurdly large"),
        ("lr: 0.1\nepochs: 1\nlr: 0.2\n", "line 3: key 'lr' is given twice"),
        (BOMB, "expands to more than"),
    ],
)
def test_normstudy_train_refuses_bad_yaml_with_status_2(tmp_path, text, message):
    (tmp_path / "cell.yaml").write_text(text)
    result = cli("train", str(tmp_path / "cell.yaml"), str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    result = cli("train", "--json", '{"lr": NaN}', str(tmp_path / "out"))
    assert result.returncode == 2 and "'lr' = nan" in result.stderr


def workflow_text(studies_text: str, defaults: str = "{model: mlp, depth: 1, width: 16}") -> str:
    return yaml.safe_dump(config_head()) + f"defaults: {defaults}\nstudies:\n{studies_text}"


def plan(workdir, text: str) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(text)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


INDENTED_BOMB = "\n".join("    " + line for line in BOMB.splitlines())
DEEP_BOMB = "\n".join("          " + line for line in BOMB.splitlines())


@pytest.mark.parametrize(
    ("studies", "message"),
    [
        (
            "  a:\n    grid: {seed: [0]}\n  b:\n    grid: {seed: [1]}\n  a:\n    grid: {lr: [1]}\n",
            "line 25: key 'a' is given twice in studies (first on line 21)",
        ),
        ("  a:\n    grid: {seed: [0], seed: [1]}\n", "key 'seed' is given twice in studies.a.grid"),
        ("  a:\n    grid: {lr: [0.1, .nan]}\n", "'studies.a.grid.lr[1]' = nan is not a number"),
        ("  a:\n    set: {lr: 1.0e+308}\n", "'studies.a.set.lr' = 1e+308 is absurdly large"),
        ("  a:\n    set: {lr: .inf}\n", "'studies.a.set.lr' = inf is infinite"),
        (f"  a:\n    unknown:\n{INDENTED_BOMB}\n", "expands to more than"),
        (f"  a:\n    set:\n      dataset_options:\n        x:\n{DEEP_BOMB}\n", "expands to more"),
        ("  a:\n    grid: {scale: [dem]}\n", "unknown grid key 'scale'"),
        (
            "  a:\n    grid: {dataset_options.bogus: [1]}\n",
            "dataset 'digits' has no option(s) bogus; valid options: none",
        ),
        (
            "  a:\n    set: {dataset: gaussian_noise}\n    grid: {dataset_options.d: [x]}\n",
            "dataset 'gaussian_noise' option 'd' = 'x' must be an integer",
        ),
        (
            "  a:\n    grid: {model_options.shortcut: [A]}\n",
            "model 'mlp' has no option(s) shortcut; valid options: none",
        ),
        (
            "  a:\n    set: {probes: [{name: norms, options: {bogus: 1}}]}\n",
            "probes[0]: probe 'norms' has no option(s) bogus; valid options: batch_size",
        ),
        ("  a:\n    set: {probes: [magic]}\n", "probes[0]: unknown probe 'magic'"),
    ],
)
def test_the_workflow_refuses_bad_input_before_any_job(tmp_path, studies, message):
    start = time.perf_counter()
    result = plan(tmp_path, workflow_text(studies))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in output
    assert "Traceback" not in output and 'File "' not in output
    assert len(output) < 3000 and time.perf_counter() - start < 30
    assert not (tmp_path / "results").exists()


def test_a_schema_error_is_one_line(tmp_path):
    result = plan(
        tmp_path,
        workflow_text("  a:\n    grid: {seed: [0]}\n").replace("scale: demo", "scale: dem"),
    )
    assert result.returncode == 2
    assert "config key 'scale': 'dem' is not one of ['demo', 'paper']" in result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr


def test_valid_input_still_plans(tmp_path):
    result = plan(
        tmp_path,
        workflow_text(
            "  a:\n    grid: {seed: [0, 1], norm_options.p: [2, inf]}\n    set: {norm: lp}\n"
        ),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ({"norm": "group"}, "group norm cannot split 100 channels into groups=8"),
        ({"norm": "group", "width": 64, "norm_options": {"groups": 7}}, "64 is not divisible by 7"),
        ({"batch_size": 5000}, "'batch_size' = 5000 is larger than the training set (1294"),
        ({"dataset_options": {"bogus": 1}}, "dataset 'digits' has no option(s) bogus"),
        ({"model_options": {"bogus": 1}}, "model 'mlp' has no option(s) bogus"),
        (
            {"probes": [{"name": "norms", "options": {"bogus": 1}}]},
            "probe 'norms' has no option(s) bogus",
        ),
        (
            {"dataset": "gaussian_noise", "dataset_options": {"d": "x"}},
            "option 'd' = 'x' must be an integer (default 1000)",
        ),
        (
            {"dataset": "digits", "dataset_options": {"train_size": 2.5}},
            "dataset option 'train_size' is the config key 'train_subset'",
        ),
        ({"model": "vgg", "depth": 11, "norm": "instance"}, "instance norm needs feature maps"),
    ],
)
def test_a_cell_that_cannot_be_built_is_named_without_training(cell, message):
    from normstudy.buildcheck import build_problem

    problem = build_problem(resolve_cell_config(cell))
    assert problem is not None and message in problem


@pytest.mark.parametrize(
    "cell",
    [{}, {"norm": "group", "width": 96}, {"model": "resnet", "depth": 8}, {"model": "lstm"}],
)
def test_cells_that_can_be_built_pass(cell):
    from normstudy.buildcheck import build_problem

    assert build_problem(resolve_cell_config(cell)) is None


def test_the_workflow_builds_every_cell_shape_while_planning(tmp_path):
    """Unbuildable cells are refused while planning, by a dry run too: all named, exit 2,
    no job runs; a plan that builds leaves a stamp, and the check_build job only reads it."""
    studies = (
        "  ok:\n    grid: {seed: [0]}\n"
        "  bad:\n    grid: {norm: [group, batch], batch_size: [32, 5000]}\n"
        "    set: {width: null}\n"
    )
    (tmp_path / "config.yaml").write_text(workflow_text(studies))
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
    for extra in (["-n"], ["--cores", "2"]):
        result = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "3 of 5 cell shapes cannot be built; no cell was trained" in output
        assert 'cell {"batch_size":32,"norm":"group"}: cannot build model' in output
        assert output.count("'batch_size' = 5000 is larger than the training set") == 2
        assert "Traceback" not in output
        assert not (tmp_path / "results" / "logs").exists()
        assert not (tmp_path / "results" / "checked_builds").exists()

    (tmp_path / "config.yaml").write_text(
        workflow_text(studies.replace("5000", "64").replace("group", "layer"))
    )
    dry = subprocess.run([*command, "-n"], capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr
    assert "checking that every cell shape builds" in dry.stderr
    stamps = list((tmp_path / "results" / "checked_builds").iterdir())
    assert [p.read_text() for p in stamps] == ["5 cell shapes of 5 cells build\n"]
    run = subprocess.run(
        [*command, "--cores", "2", "check_build"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert "checking that every cell shape builds" not in run.stderr
    assert (tmp_path / "results" / "plan_builds.txt").read_text() == stamps[0].read_text()


def test_cells_of_one_network_at_several_depths_are_one_build_check():
    """A depth only repeats blocks: one check per network at its shallowest depth."""
    from normstudy.buildplan import build_groups

    configs = {
        f"c{depth}-{seed}": resolve_cell_config({"model": "resnet", "depth": depth, "seed": seed})
        for depth in (56, 14, 110)
        for seed in (0, 1)
    }
    configs["vgg"] = resolve_cell_config({"model": "vgg", "depth": 11})
    points = [{"cell": cell} for cell in configs]
    plan = {"studies": {"s": {"cells": list(configs), "points": points}}, "cells": configs}
    groups = build_groups(plan)
    assert sorted((g.config["model"], g.config["depth"], g.cells) for g in groups) == [
        ("resnet", 14, 6),
        ("vgg", 11, 1),
    ]


def test_a_grid_too_big_for_one_dag_is_refused_within_seconds(tmp_path):
    """1,000,000 cells: refused with the count and how to plan in parts; raising
    max_cells lets a grid through, and only_studies plans one study of it."""
    huge = {"seed": list(range(1000)), "lr": [round(0.001 * (i + 1), 4) for i in range(1000)]}
    studies = f"  huge:\n    grid: {json.dumps(huge)}\n  small:\n    grid: {{seed: [0, 1]}}\n"
    start = time.perf_counter()
    result = plan(tmp_path, workflow_text(studies))
    assert time.perf_counter() - start < 20
    assert result.returncode == 2
    assert "the studies have 1,000,002 cells (huge 1,000,000, small 2)" in result.stderr
    assert "more than max_cells = 20,000" in result.stderr
    advices = ("snakemake study_<name> --config only_studies=<name>", "--batch check_cells=1/10")
    for advice in (*advices, "max_cells:"):
        assert advice in result.stderr
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n"]
    part = subprocess.run(
        [*command, "study_small", "--config", "only_studies=small"], capture_output=True, text=True
    )
    assert part.returncode == 0, part.stderr
    assert re.search(r"^train\s+2$", part.stdout, flags=re.MULTILINE)
    small = workflow_text("  a:\n    grid: {seed: [0, 1, 2]}\n")
    (tmp_path / "config.yaml").write_text(small + "max_cells: 2\n")
    assert subprocess.run(command, capture_output=True, text=True).returncode == 2
    raised = subprocess.run([*command, "--config", "max_cells=3"], capture_output=True, text=True)
    assert raised.returncode == 0, raised.stderr


@pytest.mark.parametrize(
    ("grid", "entry", "message"),
    [
        ({"lr": [1, 2]}, {"factor": "lr", "reference": True}, "reference True is not a level"),
        ({"lr": [2, 1]}, {"factor": "lr", "reference": 2, "candidates": [True]}, "candidate True"),
        ({"shuffle": [True, False]}, {"factor": "shuffle", "reference": 1}, "reference 1 is not"),
    ],
)
def test_a_boolean_reference_does_not_match_a_number(grid, entry, message):
    from normstudy.grid import StudyError, plan_studies

    config = {"defaults": {"width": 16}, "studies": {"s": {"grid": grid, "comparisons": [entry]}}}
    with pytest.raises(StudyError, match=message):
        plan_studies(config)
    assert (
        plan_studies(
            {
                **config,
                "studies": {
                    "s": {
                        "grid": {"shuffle": [True, False]},
                        "comparisons": [{"factor": "shuffle", "reference": True}],
                    }
                },
            }
        )
        .studies["s"]
        .comparisons
    )


def test_a_lowercase_boolean_from_the_command_line_gets_a_hint():
    # `snakemake --config warm_worker=false` passes the string 'false': Snakemake's --config
    # parser reads only True/False as booleans.
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from normstudy.inputcheck import describe_schema_error

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["warm_worker"] = "false"
    with pytest.raises(WorkflowError) as caught:
        validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    text = describe_schema_error(caught.value)
    assert text.startswith("config key 'warm_worker': 'false' is not one of")
    assert text.endswith("warm_worker=False")
