"""Studies -> cells: expansion, stable cell ids and validation. Imports no torch.

A study is ``grid:`` (axis -> list of values; its cells are the Cartesian product),
``set:`` (fixed overrides) and optionally ``demo:`` (a ``grid``/``set`` pair that
replaces the given axes and keys at ``scale: demo``) and optionally ``scales:`` (the scales
the study runs at; default all, e.g. ``[paper]`` for a part of a paper with no demo-sized
counterpart) and ``exclude:``/``when:`` (grid points to drop, settings that hold only at
some points: :mod:`normstudy.conditions`). A cell's config is resolved as
package defaults < the config file's ``defaults:`` < the study's ``set:`` < its grid
values. Axes may name a key inside an options mapping with a dot
(``dataset_options.n_per_class``).

A cell id is a readable prefix plus a hash of every value that differs from the
package defaults and of the behaviour versions above 1 of the parts the cell uses
(:mod:`normstudy.behaviour`), so adding a new hyperparameter with a default value, or adding an
unrelated study, leaves every existing id (and result) untouched, and a fix that bumps a
part's version re-plans exactly the cells that use it; the same cell in two studies has
one id and trains once.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from normstudy import behaviour, conditions
from normstudy.catalog import DATASETS, MODELS
from normstudy.catalog.cell_rules import cell_problems
from normstudy.config import DEFAULTS, ConfigError, canonical_json, resolve_cell_config
from normstudy.epochs import Plan as TrainingPlan
from normstudy.wording import plural

SCALES = ("demo", "paper")
STUDY_KEYS = ("description", "grid", "set", "demo", "comparisons", "scales", "exclude", "when")
OPTION_KEYS = ("dataset_options", "model_options", "norm_options")
DEMO_KEYS = ("grid", "set", "exclude", "when")
STUDY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
"""At most 64 characters: a study's name is part of its figures' file names."""
MAX_ERRORS = 20


class StudyError(ValueError):
    """A study that cannot run; the message names the study, the key and the valid values."""


@dataclass(frozen=True)
class Cell:
    id: str
    config: dict[str, Any]


@dataclass
class Study:
    name: str
    axes: list[str]
    cells: list[Cell]
    points: list[dict[str, Any]]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""


@dataclass
class Plan:
    scale: str
    studies: dict[str, Study]
    cells: dict[str, dict[str, Any]]

    def study_cell_ids(self, study: str) -> list[str]:
        return [cell.id for cell in self.studies[study].cells]


def non_default_items(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if DEFAULTS.get(key, object()) != value}


def readable_prefix(config: Mapping[str, Any]) -> str:
    depth = "" if config["depth"] is None else str(config["depth"])
    parts = [config["dataset"], f"{config['model']}{depth}", config["norm"], config["freeze"]]
    parts.append(f"s{config['seed']}")
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(str(p) for p in parts))


def cell_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a cell id hashes: the non-default values, plus the versions above 1 of the parts
    the cell uses (none at version 1, so ids made before versions existed stay)."""
    identity = non_default_items(config)
    bumped = behaviour.bumped_versions(config)
    if bumped:
        identity[behaviour.IDENTITY_KEY] = bumped
    return identity


def cell_id(config: Mapping[str, Any]) -> str:
    """Readable prefix + the first 10 hex digits of the hash of :func:`cell_identity`."""
    digest = hashlib.sha256(canonical_json(cell_identity(config)).encode()).hexdigest()
    return f"{readable_prefix(config)}-{digest[:10]}"


def assign(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in ``config``; a dotted key sets an entry of an options mapping."""
    if "." in key:
        outer, inner = key.split(".", 1)
        config[outer] = {**config.get(outer, {}), inner: value}
    else:
        config[key] = value


def check_axis_name(study: str, key: str, where: str) -> None:
    outer = key.split(".", 1)[0]
    if outer not in DEFAULTS:
        raise StudyError(
            f"study {study!r}: unknown {where} key {key!r}; valid keys: "
            f"{', '.join(sorted(DEFAULTS))} (options inside {', '.join(OPTION_KEYS)} "
            "as e.g. 'dataset_options.n_per_class')"
        )
    if "." in key and outer not in OPTION_KEYS:
        raise StudyError(
            f"study {study!r}: {where} key {key!r} has a dot, but only {', '.join(OPTION_KEYS)} "
            f"hold options"
        )


def study_parts(name: str, study: Mapping[str, Any], scale: str):
    """The grid and fixed settings of ``study`` at ``scale``."""
    if not isinstance(study, Mapping):
        raise StudyError(f"study {name!r} must be a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(study) - set(STUDY_KEYS))
    if unknown:
        raise StudyError(
            f"study {name!r}: unknown key(s) {', '.join(unknown)}; valid keys: "
            f"{', '.join(STUDY_KEYS)}"
        )
    grid = dict(study.get("grid") or {})
    settings = dict(study.get("set") or {})
    if scale == "demo" and study.get("demo"):
        demo = study["demo"]
        unknown = sorted(set(demo) - set(DEMO_KEYS))
        if unknown:
            raise StudyError(
                f"study {name!r}: unknown demo key(s) {', '.join(unknown)}; valid: "
                f"{', '.join(DEMO_KEYS)}"
            )
        grid.update(demo.get("grid") or {})
        settings.update(demo.get("set") or {})
    for key, values in grid.items():
        check_axis_name(name, key, "grid")
        if not isinstance(values, list) or not values:
            raise StudyError(
                f"study {name!r}: grid axis {key!r} must be a non-empty list; got {values!r}"
            )
        if len({canonical_json(v) for v in values}) != len(values):
            raise StudyError(f"study {name!r}: grid axis {key!r} repeats a value: {values}")
    for key in settings:
        check_axis_name(name, key, "set")
    return grid, settings


SEMANTIC_KEYS = ("dataset", "model", "depth", "norm", "freeze")


def check_axis_values(name: str, base: dict[str, Any], grid: Mapping[str, list]) -> None:
    """Validate every grid value on its own against the cell schema.

    The schema constrains each key separately, so checking each axis value once (the
    sum of the axis lengths, not their product) validates every cell of the grid.
    """
    errors = []
    for key, values in grid.items():
        for value in values:
            trial = dict(base)
            assign(trial, key, value)
            try:
                resolve_cell_config(trial)
            except ConfigError as error:
                errors.append(f"study {name!r}, grid {key}={value!r}: {error}")
    if errors:
        raise StudyError(error_listing(errors))


def error_listing(errors: list[str]) -> str:
    """The first MAX_ERRORS errors, one a line, and how many more there are."""
    more = len(errors) - MAX_ERRORS
    tail = [f"... and {plural(more, 'more error')} like these"] if more > 0 else []
    return "\n".join(errors[:MAX_ERRORS] + tail)


def expand_study(
    name: str, study: Mapping[str, Any], defaults: Mapping[str, Any], scale: str
) -> Study:
    """All cells of one study, in grid order, validated."""
    if not STUDY_NAME.match(name):
        raise StudyError(
            f"study name {name!r} may only contain letters, digits and _ (starting with a "
            "letter), at most 64 characters"
        )
    grid, settings = study_parts(name, study, scale)
    base = copy.deepcopy(dict(defaults))
    for key, value in settings.items():
        assign(base, key, copy.deepcopy(value))
    try:
        base = resolve_cell_config(base)
    except ConfigError as error:
        raise StudyError(f"study {name!r}: {error}") from None
    check_axis_values(name, base, grid)
    exclude, when = study_conditions(name, study, grid, base, scale)
    axes = list(grid)
    cells, points, errors = [], [], []
    problems_of: dict[tuple, list[str]] = {}
    for values in itertools.product(*(grid[a] for a in axes)):
        point = dict(zip(axes, values, strict=True))
        if conditions.excluded(point, exclude):
            continue
        config = dict(base)
        for key, value in conditions.settings_at(point, when):
            assign(config, key, copy.deepcopy(value))
        for key, value in point.items():
            assign(config, key, value)
        names_key = (
            *(config[k] for k in SEMANTIC_KEYS),
            *(canonical_json(config[k]) for k in OPTION_KEYS),
            canonical_json(config["probes"]),
        )
        if names_key not in problems_of:
            problems_of[names_key] = cell_problems(config)
        if problems_of[names_key]:
            where = f"study {name!r}, cell {canonical_json(point)}"
            errors.extend(f"{where}: {problem}" for problem in problems_of[names_key])
        if len(errors) >= MAX_ERRORS:
            break
        cells.append(Cell(cell_id(config), config))
        points.append(point)
    if errors:
        raise StudyError(error_listing(errors))
    if not cells:
        raise StudyError(f"study {name!r}: exclude drops every point of the grid")
    comparisons = list(study.get("comparisons") or [])
    check_comparisons(name, comparisons, grid)
    return Study(name, axes, cells, points, comparisons, str(study.get("description", "")))


def conditional_parts(study: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """The ``exclude`` and ``when`` entries in force at ``scale``: a demo's replace the
    study's (a demo may need fewer epochs where the paper's BN-only arm trains longer)."""
    demo = study.get("demo") or {}
    return {
        key: demo[key] if scale == "demo" and key in demo else study.get(key)
        for key in ("exclude", "when")
    }


def axis_levels(study: Mapping[str, Any], grid: Mapping[str, list]) -> dict[str, list]:
    """Each axis's levels at either scale: ``exclude`` and ``when`` may name both."""
    demo_grid = (study.get("demo") or {}).get("grid") or {}
    levels = {}
    for axis, values in grid.items():
        merged = list(values)
        for other in ((study.get("grid") or {}).get(axis) or [], demo_grid.get(axis) or []):
            known = {canonical_json(v) for v in merged}
            merged += [v for v in other if canonical_json(v) not in known]
        levels[axis] = merged
    return levels


def study_conditions(
    name: str,
    study: Mapping[str, Any],
    grid: Mapping[str, list],
    base: Mapping[str, Any],
    scale: str,
) -> tuple[list[conditions.Match], list[conditions.When]]:
    """The ``exclude`` and ``when`` entries in force at ``scale``, parsed and their settings
    validated; the study's and its demo's are both checked at either scale, so that a typo
    does not wait for the other scale's run to show."""
    levels = axis_levels(study, grid)
    try:
        for source in (study, study.get("demo") or {}):
            conditions.parse_exclude(source.get("exclude"), levels)
            conditions.parse_when(source.get("when"), levels, list(grid))
        parts = conditional_parts(study, scale)
        exclude = conditions.parse_exclude(parts["exclude"], levels)
        when = conditions.parse_when(parts["when"], levels, list(grid))
    except conditions.ConditionError as error:
        raise StudyError(f"study {name!r}: {error}") from None
    for i, entry in enumerate(when):
        trial = copy.deepcopy(dict(base))
        for key, value in entry.settings.items():
            check_axis_name(name, key, f"when[{i}].set")
            assign(trial, key, copy.deepcopy(value))
        try:
            resolve_cell_config(trial)
        except ConfigError as error:
            raise StudyError(f"study {name!r}, when[{i}]: {error}") from None
    return exclude, when


def check_comparisons(name: str, comparisons: list, grid: Mapping[str, list]) -> None:
    """The study's declared comparisons name grid axes and levels that exist."""
    from normstudy.comparison_specs import parse_comparisons

    try:
        parse_comparisons(comparisons, grid)
    except ValueError as error:
        raise StudyError(f"study {name!r}: comparisons: {error}") from None


def runs_at_scale(name: str, study: Any, scale: str) -> bool:
    """Whether ``study`` has cells at ``scale`` (its ``scales:`` list; all scales by default)."""
    if not isinstance(study, Mapping) or "scales" not in study:
        return True
    scales = study["scales"]
    if not isinstance(scales, list) or not scales or not set(scales) <= set(SCALES):
        raise StudyError(
            f"study {name!r}: scales must be a non-empty list of {', '.join(SCALES)}; "
            f"got {scales!r}"
        )
    return scale in scales


def plan_studies(config: Mapping[str, Any], only: list[str] | None = None) -> Plan:
    """Every study of a workflow config at its ``scale`` (``only``: a subset of names)."""
    scale = config.get("scale", "demo")
    if scale not in SCALES:
        raise StudyError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    defaults = dict(config.get("defaults") or {})
    for key in defaults:
        check_axis_name("(defaults)", key, "defaults")
    studies_config = config.get("studies") or {}
    if not studies_config:
        raise StudyError("the config defines no studies (add one under `studies:`)")
    names_wanted = list(studies_config) if only is None else only
    missing = sorted(set(names_wanted) - set(studies_config))
    if missing:
        raise StudyError(
            f"unknown stud{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}; "
            f"valid studies: {', '.join(studies_config)}"
        )
    studies, cells = {}, {}
    for name in names_wanted:
        if not runs_at_scale(name, studies_config[name], scale):
            if only is not None:
                raise StudyError(
                    f"study {name!r} runs only at scale "
                    f"{', '.join(studies_config[name]['scales'])}, not at {scale!r}"
                )
            continue
        study = expand_study(name, studies_config[name], defaults, scale)
        studies[name] = study
        for cell in study.cells:
            cells.setdefault(cell.id, cell.config)
    return Plan(scale, studies, cells)


MAX_CELLS = 20_000
"""Default largest grid one workflow run plans (config key ``max_cells``): planning costs
Snakemake and this workflow about 5.5 ms and 40 kB per cell (BENCHMARKS.md)."""


def cell_counts(config: Mapping[str, Any], only: list[str] | None = None) -> dict[str, int]:
    """Cells per study at the config's scale, counted from the axis lengths (nothing is
    expanded; cells shared by studies are counted in each)."""
    scale = config.get("scale", "demo")
    studies = config.get("studies") or {}
    counts = {}
    for name in studies if only is None else only:
        if name not in studies or not runs_at_scale(name, studies[name], scale):
            continue
        grid, _ = study_parts(name, studies[name], scale)
        count = 1
        for values in grid.values():
            count *= len(values)
        if conditional_parts(studies[name], scale)["exclude"]:
            count = exact_count(name, studies[name], grid, scale)
        counts[name] = count
    return counts


def exact_count(name: str, study: Mapping[str, Any], grid: Mapping[str, list], scale: str) -> int:
    """Points of ``grid`` that the ``exclude`` in force at ``scale`` keeps (enumerated: no
    configs are built)."""
    entries = conditional_parts(study, scale)["exclude"]
    try:
        exclude = conditions.parse_exclude(entries, axis_levels(study, grid))
    except conditions.ConditionError as error:
        raise StudyError(f"study {name!r}: {error}") from None
    axes = list(grid)
    return sum(
        not conditions.excluded(dict(zip(axes, values, strict=True)), exclude)
        for values in itertools.product(*(grid[a] for a in axes))
    )


def planning_cost(cells: int) -> str:
    """Time and memory of a dry run of ``cells`` cells, from BENCHMARKS.md ("Planning at
    10,000 and 100,000 jobs": 3 to 5.5 ms and 30 to 45 KB a cell, of which the larger), in
    units that fit the size (a small max_cells gave "about 0 min in about 0.0 GB")."""
    seconds, megabytes = cells * 5.5e-3, cells * 40e-3
    when = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"
    size = f"{megabytes / 1e3:.1f} GB" if megabytes >= 1e3 else f"{max(megabytes, 1):.0f} MB"
    return f"{when} in about {size}"


def scale_problem(counts: Mapping[str, int], max_cells: int) -> str | None:
    """Why a grid of ``counts`` cells is too big to plan in one run (with what to do), or None."""
    total = sum(counts.values())
    if total <= max_cells:
        return None
    largest = sorted(counts.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{name} {count:,}" for name, count in largest[:5])
    more = f", and {len(largest) - 5} more" if len(largest) > 5 else ""
    return (
        f"the studies have {total:,} cells ({listed}{more}), more than max_cells = "
        f"{max_cells:,}: one Snakemake run would plan them for about "
        f"{planning_cost(total)} before starting any job.\n"
        "Plan it in parts: `snakemake study_<name> --config only_studies=<name>` plans and "
        "trains one study (several: only_studies=[a,b]); split a study's grid into several "
        "studies to go smaller (e.g. one per seed); `--batch check_cells=1/10` then trains a tenth "
        "of the planned cells per run. Or raise `max_cells:` in config.yaml (or --config "
        "max_cells=N) to plan it whole anyway."
    )


def only_studies(value: Any) -> list[str] | None:
    """The config key ``only_studies`` (a list, or names separated by commas) as a list."""
    if value is None or value == []:
        return None
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value
    raise StudyError(f"only_studies must be a list of study names; got {value!r}")


DATA_KEYS = ("dataset", "dataset_options", "val_size", "split_seed")


def data_key(config: Mapping[str, Any]) -> str:
    """Name of the tensor cache a cell reads: its dataset plus a hash of what fixes the splits
    (and the dataset's behaviour version above 1: a fix of a loader needs a new cache).

    Every parse names the data cache of every cell (the workflow's default target lists
    them all), and a grid has few distinct data settings: the key is remembered by the
    ``repr`` of those settings (equal reprs of JSON values are equal canonical JSON)."""
    version = behaviour.version_of(f"dataset.{config['dataset']}")
    settings = repr((version, *(config[key] for key in DATA_KEYS)))
    key = _DATA_KEYS_SEEN.get(settings)
    if key is None:
        key = _DATA_KEYS_SEEN[settings] = _computed_data_key(config, version)
    return key


_DATA_KEYS_SEEN: dict[str, str] = {}


def _computed_data_key(config: Mapping[str, Any], version: int) -> str:
    fixed = {key: config[key] for key in DATA_KEYS}
    if version > 1:
        fixed[behaviour.IDENTITY_KEY] = version
    digest = hashlib.sha256(canonical_json(fixed).encode()).hexdigest()
    return f"{config['dataset']}-{digest[:10]}"


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON the workflow hands to the aggregation: studies, axes, points and configs."""
    return {
        "scale": plan.scale,
        "studies": {
            name: {
                "axes": study.axes,
                "cells": [cell.id for cell in study.cells],
                "points": study.points,
                "comparisons": study.comparisons,
                "description": study.description,
            }
            for name, study in plan.studies.items()
        },
        "cells": plan.cells,
    }


def estimated_parameters(config: Mapping[str, Any]) -> float:
    """A torch-free estimate of the parameter count, for job resources only: the model
    catalog's (:attr:`normstudy.catalog.ModelEntry.parameters`) at the cell's depth,
    width, dataset and options, the model's defaults where the cell gives none."""
    model = MODELS[config["model"]]
    return model.parameters(
        config["depth"] or model.depth,
        config["width"] or model.width,
        DATASETS[config["dataset"]],
        {**model.defaults, **config["model_options"]},
    )


def training_examples(config: Mapping[str, Any]) -> int:
    """Examples a cell processes in training, over the steps :mod:`normstudy.train` takes
    (:class:`normstudy.epochs.Plan`), for a training set of the dataset's usual size."""
    size = config["train_subset"] or DATASETS[config["dataset"]].train_examples
    # A batch larger than the set fails the build check; here it only sizes a job.
    batch = min(config["batch_size"], size)
    return TrainingPlan.for_config({**config, "batch_size": batch}, size).examples


def job_resources(config: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, int]:
    """Threads, memory (MB), run time (minutes) and GPUs of one training job.

    ``settings`` is the workflow config's ``resources:`` block: ``threads``, ``gpu``,
    ``mem_mb`` (base) and ``mem_mb_per_mparam``, ``runtime`` (base minutes) and
    ``minutes_per_gstep`` (minutes per 1e9 parameter-example steps; measure yours).
    """
    params_m = estimated_parameters(config) / 1e6
    work = params_m * 1e6 * training_examples(config) / 1e9
    return {
        "threads": int(settings["threads"]),
        "gpu": int(settings["gpu"]),
        "mem_mb": int(settings["mem_mb"] + settings["mem_mb_per_mparam"] * params_m),
        "runtime": int(settings["runtime"] + settings["minutes_per_gstep"] * work),
    }
