"""What the workflow asks a SLURM cluster for, decided before anything is submitted.

Imported by the Snakefile (never torch). Under ``snakemake --profile slurm`` the user's
profile holds only the executor, an account, a partition and a job limit; everything this
workflow needs is decided here from the ``slurm:`` block of ``config.yaml`` and what
``sinfo`` reports:

- every ``train`` and ``estimate`` job asks for ``slurm.gpus`` GPUs, ``slurm.threads`` CPUs
  and its memory; with ``resources.cells_per_gpu`` k > 1 a ``train`` job asks for 1/k of a
  GPU's shards instead (:func:`gpu_sharing_request`);
- a training job's time comes from a calibration for the GPU it will run on
  (:func:`cell_minutes`): the ``estimate`` job's measurement on the cluster's GPU where one
  was made (``results/estimate/<scale>/cells.csv``), else ``slurm.minutes_per_gstep``;
- no job asks for more than its partition allows (``slurm.max_runtime``, else the
  partition's MaxTime): a cell that needs longer runs as a chain of jobs. SLURM warns the
  job ``slurm.warn_seconds`` before its limit (``--signal=TERM@...``), the cell checkpoints
  and exits with status 75, and Snakemake resubmits it (the rule's ``retries`` cover the
  longest chain of the plan, plus ``slurm.retries`` for faults), and it resumes;
- :func:`preflight` refuses a plan that a scheduler would reject or run wrongly.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normstudy.grid import estimated_parameters, training_examples
from normstudy.wording import plural

SLURM_DEFAULTS: dict[str, Any] = {
    "gpus": 1,
    "threads": 2,
    "gpu_partition": None,
    "cpu_partition": None,
    "max_runtime": None,
    "minutes_per_gstep": 0.01,
    "startup_minutes": 5,
    "safety": 1.5,
    "warn_seconds": 300,
    "retries": 2,
}
"""The ``slurm:`` block's defaults (``workflow/schemas/config.schema.yaml`` documents each).

``minutes_per_gstep`` = 0.01 assumes a GPU that trains 1.7e9 parameter-examples a second
(a 0.85 M-parameter ResNet-56 at 2,000 CIFAR images a second); a cell's time is then
multiplied by ``safety``. It is an assumption, not a measurement: ``snakemake estimate``
on the cluster measures each group of cells on its GPU, and its result replaces it."""


class ClusterConfigError(ValueError):
    """A plan that a SLURM cluster would reject or run wrongly; the message says the fix."""


def slurm_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``slurm:`` block of the workflow config with its defaults filled in."""
    return {**SLURM_DEFAULTS, **(config.get("slurm") or {})}


# --- time limits ---------------------------------------------------------------------

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time_limit(text: str) -> float | None:
    """Minutes of a SLURM time limit (``sinfo %l``: ``D-HH:MM:SS``, ``HH:MM:SS``,
    ``MM:SS``, ``MM``, ``D-HH``); None for ``infinite``/``UNLIMITED``."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"not a SLURM time limit: {text!r}")
    days, first, second, third = match.groups()
    fields = [int(v) for v in (first, second, third) if v is not None]
    if days is not None:
        hours, minutes, seconds = (fields + [0, 0, 0])[:3]
        return int(days) * 1440 + hours * 60 + minutes + seconds / 60
    if len(fields) == 3:
        return fields[0] * 60 + fields[1] + fields[2] / 60
    if len(fields) == 2:
        return fields[0] + fields[1] / 60
    return float(fields[0])


@dataclass(frozen=True)
class Partition:
    """One SLURM partition as ``sinfo`` reports it."""

    name: str
    max_minutes: float | None
    gpus: bool
    default: bool
    up: bool
    shards_per_gpu: int = 0
    """GPU shards (``gres/shard``) per GPU on the partition's GPU nodes: the fewest of any
    node configuration (0 where one of them has GPUs but no shards)."""


_GRES_COUNT = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?::[A-Za-z0-9_.]+)?:(?P<count>\d+)")


def gres_counts(gres: str) -> dict[str, int]:
    """Counts per GRES name of one ``sinfo %G`` field: ``gpu:a100:4,shard:32(S:0-1)`` ->
    ``{"gpu": 4, "shard": 32}`` (types summed; ``(null)`` -> empty)."""
    counts: dict[str, int] = {}
    # Commas also separate socket lists inside "(S:0,1)": drop the parentheses first.
    for part in re.sub(r"\([^)]*\)", "", gres).split(","):
        match = _GRES_COUNT.match(part.strip())
        if match:
            counts[match["name"]] = counts.get(match["name"], 0) + int(match["count"])
    return counts


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from ``sinfo -h -o '%P|%l|%G|%a'`` (one line per partition and node
    configuration; a partition has GPUs if any of its nodes has a ``gpu`` GRES)."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4:
            continue
        raw, limit, gres, availability = fields
        name = raw.rstrip("*")
        known = partitions.get(name)
        counts = gres_counts(gres)
        shards = [known.shards_per_gpu] if known and known.gpus else []
        if counts.get("gpu"):
            shards.append(counts.get("shard", 0) // counts["gpu"])
        partitions[name] = Partition(
            name=name,
            max_minutes=parse_time_limit(limit),
            gpus=(known.gpus if known else False) or counts.get("gpu", 0) > 0,
            default=raw.endswith("*"),
            up=availability.strip().lower() == "up",
            shards_per_gpu=min(shards) if shards else 0,
        )
    return partitions


def run_tool(run: Callable[..., Any], *command: str) -> subprocess.CompletedProcess | None:
    """``command`` (a SLURM client tool) run with a timeout; None where the tool is missing
    or does not answer. The caller reads the exit status."""
    if shutil.which(command[0]) is None:
        return None
    try:
        return run(list(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def query_partitions(run: Callable[..., Any] = subprocess.run) -> dict[str, Partition] | None:
    """The cluster's partitions, or None where ``sinfo`` is missing or fails."""
    result = run_tool(run, "sinfo", "-h", "-o", "%P|%l|%G|%a")
    if result is None or result.returncode != 0:
        return None
    return parse_sinfo(result.stdout)


# --- per-cell requests ---------------------------------------------------------------


def measured_minutes(estimate_csv: Path) -> dict[str, float]:
    """Cell id -> training minutes measured by ``snakemake estimate`` on a CUDA device.

    Empty when the file is missing or was measured on another device: a CPU measurement
    says nothing about a GPU job's time."""
    if not estimate_csv.is_file():
        return {}
    with estimate_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["cell_id"]: float(row["hours"]) * 60
        for row in rows
        if row.get("device", "").startswith("cuda")
    }


def cell_minutes(
    cell_id: str,
    config: Mapping[str, Any],
    settings: Mapping[str, Any],
    measured: Mapping[str, float],
    sharing: int = 1,
) -> float:
    """Estimated minutes of training and evaluation of one cell on a GPU, before safety.

    A cell that shares its GPU with ``sharing`` - 1 others (``gpu_sharing_request``) may
    get as little as 1/``sharing`` of it, so its time is taken as ``sharing`` times its
    time alone: small cells, the ones worth sharing, lose less, and a longer cell still
    ends through a chain of jobs."""
    if cell_id in measured:
        return measured[cell_id] * sharing
    work = estimated_parameters(config) * training_examples(config) / 1e9
    return settings["minutes_per_gstep"] * work * sharing


@dataclass(frozen=True)
class TrainRequest:
    """What one training job asks SLURM for, and how many jobs its cell needs."""

    runtime: int
    segments: int
    needed_minutes: float


def train_request(
    minutes: float, settings: Mapping[str, Any], cap: float | None, attempt: int = 1
) -> TrainRequest:
    """The time request of a training job (``attempt`` counts from 1: a job resubmitted
    after its cell outgrew the estimate asks for more, up to ``cap``), and the number of
    chained jobs the cell needs."""
    startup = settings["startup_minutes"]
    warning = settings["warn_seconds"] / 60
    needed = minutes * settings["safety"]
    # The warning comes warn_seconds before the limit: a job that is to finish in one go
    # must not be warned before its work is done.
    wanted = math.ceil(startup + warning + needed * attempt)
    if cap is None:
        return TrainRequest(wanted, 1, needed)
    usable = cap - startup - warning
    if usable <= 0:
        raise ClusterConfigError(
            f"the {cap:g}-minute limit of a training job ({cap_source(settings)}) leaves no "
            f"time to train after slurm.startup_minutes ({startup}) and slurm.warn_seconds "
            f"({settings['warn_seconds']}); lower those, or train on a partition with a "
            "longer limit (slurm.gpu_partition, slurm.max_runtime)"
        )
    segments = max(1, math.ceil(needed / usable))
    return TrainRequest(min(wanted, math.floor(cap)), segments, needed)


def cap_source(settings: Mapping[str, Any]) -> str:
    """Where the cap of ``effective_cap`` came from, for messages."""
    if settings["max_runtime"] is not None:
        return "slurm.max_runtime"
    return "the training partition's MaxTime"


def effective_cap(settings: Mapping[str, Any], partition: Partition | None) -> float | None:
    """The longest job to ask for: ``slurm.max_runtime``, else the partition's MaxTime."""
    if settings["max_runtime"] is not None:
        return float(settings["max_runtime"])
    return partition.max_minutes if partition is not None else None


def cpu_job_cap(settings: Mapping[str, Any], partition: Partition | None) -> float | None:
    """The longest job to ask for on the CPU jobs' partition: the shorter of
    ``slurm.max_runtime`` and that partition's MaxTime (the training partition's limit,
    which ``effective_cap`` gives, may be far shorter: a 2-minute one would cut data
    preparation short)."""
    limits = [settings["max_runtime"], partition.max_minutes if partition else None]
    known = [float(limit) for limit in limits if limit is not None]
    return min(known) if known else None


def chain_retries(requests: Mapping[str, TrainRequest], settings: Mapping[str, Any]) -> int:
    """Retries of the train rule: the longest chain of the plan, plus ``slurm.retries``
    for faults (preemption, a node failure, a crash)."""
    longest = max((r.segments for r in requests.values()), default=1)
    return longest - 1 + int(settings["retries"])


# --- bundles -------------------------------------------------------------------------

BUNDLE_SLOT = "bundle_slot"
"""A resource each bundled training job takes one of, scoped ``local`` (counted per
submitted job, not across the workflow) and limited to one: Snakemake then stacks a
bundle's cells in series when it sizes the bundle's SLURM job
(``GroupResources.basic_layered``), asking for one cell's GPUs, CPUs and memory and for the
sum of the cells' times. That is how the SLURM executor runs them: its job step starts the
bundle's Snakemake with ``--jobs 1``. Without it Snakemake sizes a bundle for as many cells
at once as ``--cores`` allows: on the test cluster a bundle of 4 cells under ``--cores 16``
asked for ``--gpus=4 --cpus-per-task=4`` and the longest cell's time, and never started on
the 2-GPU node (BENCHMARKS.md, "How a bundle is sized")."""


def bundled_minutes(minutes: int, cap: float | None, size: int) -> int:
    """The time a cell in a bundle of ``size`` asks for: its own request, never more than
    its share of the cap, so that the bundle's sum stays within the cap on every attempt
    (a retried job asks for more time; ``bundle_problem`` refuses a plan whose first
    attempt would not fit)."""
    if cap is None or size <= 1:
        return minutes
    return min(minutes, math.floor(cap / size))


def bundle_size_of(size: int, cells: int) -> int:
    """Cells one bundle can hold: ``--group-components``, at most the plan's cells."""
    return max(1, min(size, cells))


def cells_to_bundle(
    requests: Mapping[str, TrainRequest],
    targeted: Collection[str] | None,
    finished: Callable[[str], bool],
) -> dict[str, TrainRequest]:
    """The requests of the cells a bundled run will train: finished cells run again only
    when forced, and ``targeted`` (the cells of ``study_<name>`` targets; None: every
    cell) limits the rest, so that the others take no room in a bundle."""
    return {
        cell: request
        for cell, request in requests.items()
        if (targeted is None or cell in targeted) and not finished(cell)
    }


def bundle_outline(requests: Mapping[str, TrainRequest], size: int, group: str | None) -> str:
    """What the bundles of the cells still to run will ask SLURM for, for the user to read
    before submitting: Snakemake's dry run lists each bundled cell, not its bundle."""
    if not requests:
        return f"bundles (--group-components {group}={size}): no training cell left to run"
    held = bundle_size_of(size, len(requests))
    longest = sorted((r.runtime for r in requests.values()), reverse=True)[:held]
    jobs = math.ceil(len(requests) / held)
    return (
        f"bundles (--group-components {group}={size}): {plural(len(requests), 'training cell')}"
        f" to run, in at least {plural(jobs, 'SLURM job')} of up to {held}; each asks for "
        "one cell's GPUs, CPUs and memory and for the sum of its cells' times, at most "
        f"{sum(longest)} min"
    )


def bundle_problem(
    requests: Mapping[str, TrainRequest],
    study_of: Mapping[str, str],
    cap: float | None,
    size: int,
    group: str | None,
    settings: Mapping[str, Any],
) -> str | None:
    """Why bundles of ``size`` training cells would exceed the cap (None if they would
    not): a bundle asks for the sum of its cells' times, and Snakemake may put any
    ``size`` of the cells it runs (``requests``: the caller leaves out finished ones) in one
    bundle, so the longest request times ``size`` must fit the cap. Names the study, the
    cell and the largest bundle that fits."""
    size = bundle_size_of(size, len(requests))
    if cap is None or size <= 1:
        return None
    cell, longest = max(((c, r.runtime) for c, r in requests.items()), key=lambda x: x[1])
    fits = math.floor(cap / longest)
    if fits >= size:
        return None
    fix = (
        f"bundles of at most {fits} fit: --group-components {group}={fits}"
        if fits > 1
        else "cells this long cannot share a job: drop train from --groups (each cell is "
        "then its own job)"
    )
    return (
        f"--group-components {group}={size}: a bundle runs its cells one after another and "
        f"asks SLURM for the sum of their times, here up to {size} x {longest} min (study "
        f"{study_of.get(cell, '?')}, cell {cell}, the longest), above the {cap:g}-minute "
        f"limit of a training job ({cap_source(settings)}); {fix}"
    )


# --- preflight -----------------------------------------------------------------------


def resolve_partition(
    name: str | None, partitions: Mapping[str, Partition] | None, role: str, key: str
) -> Partition | None:
    """The partition ``name`` (the cluster's default partition if None); None when the
    cluster cannot be asked."""
    if partitions is None:
        return None
    if name is None:
        defaults = [p for p in partitions.values() if p.default]
        return defaults[0] if defaults else None
    if name not in partitions:
        raise ClusterConfigError(
            f"{key}: partition {name!r} for {role} does not exist on this cluster; "
            f"partitions: {', '.join(sorted(partitions))} (sinfo -s)"
        )
    return partitions[name]


def cpu_partition(
    settings: Mapping[str, Any], partitions: Mapping[str, Partition] | None, fallback: str | None
) -> str | None:
    """The partition of the CPU-only jobs (data caches, tables, figures): ``slurm.
    cpu_partition``, else the default partition if it has no GPUs, else the first
    partition without GPUs, else ``fallback`` (the profile's partition)."""
    if settings["cpu_partition"] is not None:
        resolve_partition(settings["cpu_partition"], partitions, "CPU jobs", "slurm.cpu_partition")
        return settings["cpu_partition"]
    if partitions is None:
        return fallback
    ordered = sorted(partitions.values(), key=lambda p: (not p.default, p.name))
    for partition in ordered:
        if partition.up and not partition.gpus:
            return partition.name
    return fallback


def sacct_works(run: Callable[..., Any] = subprocess.run) -> bool:
    """Whether ``sacct`` answers (it fails where the accounting daemon is not set up)."""
    result = run_tool(run, "sacct", "-n", "-X", "-o", "JobID", "-S", "now-1minutes")
    return result is not None and result.returncode == 0


def status_problem(status_command: str | None, sacct_ok: bool) -> str | None:
    """Why the SLURM plugin would never learn that jobs finished: it polls ``sacct``
    unless told ``squeue``, and a ``sacct`` without the accounting daemon fails."""
    if status_command == "squeue" or sacct_ok:
        return None
    return (
        "sacct does not work on this cluster (no accounting daemon?), and the SLURM plugin "
        "would poll it for job status forever; add `slurm-status-command: squeue` to your "
        "profile (`normstudy slurm-profile` does so where needed)"
    )


def preflight(
    requests: Mapping[str, TrainRequest],
    study_of: Mapping[str, str],
    settings: Mapping[str, Any],
    partition: Partition | None,
    partitions: Mapping[str, Partition] | None,
) -> list[str]:
    """Why this plan must not be submitted (empty if it may). Each reason names the
    study, the cell and the fix."""
    problems: list[str] = []
    if partitions is None or partition is None:
        return problems
    gpu_partitions = sorted(p.name for p in partitions.values() if p.gpus)
    example = next(iter(requests), None)
    where = f" (study {study_of.get(example, '?')}, cell {example}, and every other)"
    if settings["gpus"] < 1 and partition.gpus:
        problems.append(
            f"training jobs would run on GPU partition {partition.name!r} without a GPU"
            f"{where}; set slurm.gpus: 1 in config.yaml, or slurm.gpu_partition to a CPU "
            "partition if training on CPUs is intended"
        )
    if settings["gpus"] >= 1 and not partition.gpus:
        fix = (
            f"set slurm.gpu_partition to one of: {', '.join(gpu_partitions)}"
            if gpu_partitions
            else "this cluster reports no GPUs (sinfo %G); set slurm.gpus: 0 to train on CPUs"
        )
        problems.append(
            f"training jobs ask for {settings['gpus']} GPU(s) but partition "
            f"{partition.name!r} has none{where}; {fix}"
        )
    if not partition.up:
        problems.append(f"partition {partition.name!r} is not up (sinfo: {partition.name})")
    cap = settings["max_runtime"]
    if cap is not None and partition.max_minutes is not None and cap > partition.max_minutes:
        problems.append(
            f"slurm.max_runtime {cap} min exceeds partition {partition.name!r}'s MaxTime "
            f"{partition.max_minutes:g} min; jobs asking for it would never start. Set "
            f"slurm.max_runtime to at most {partition.max_minutes:g} (or null: the MaxTime)"
        )
    return problems


# --- GPU sharing -----------------------------------------------------------------------


def sharing_choices(shards_per_gpu: int) -> list[int]:
    """The ``cells_per_gpu`` values a partition with ``shards_per_gpu`` shards per GPU
    allows: those that give each cell a whole number of shards."""
    return [k for k in range(1, shards_per_gpu + 1) if shards_per_gpu % k == 0]


def gpu_sharing_request(
    cells_per_gpu: int,
    settings: Mapping[str, Any],
    partition: Partition | None,
    grouped: bool,
) -> tuple[str | None, list[str]]:
    """The ``gres`` a training job asks for when ``cells_per_gpu`` cells share one GPU
    under SLURM (None: no sharing, the job asks for ``slurm.gpus`` GPUs), and why the
    plan cannot share (empty if it can).

    Sharing goes through SLURM's own GPU sharing, ``gres/shard`` (SLURM >= 22.05): each
    cell stays one job and asks for 1/``cells_per_gpu`` of a GPU's shards, and SLURM places
    up to ``cells_per_gpu`` such jobs on one GPU. Cells cannot share inside a bundle of
    grouped jobs: the SLURM executor runs each bundled cell in its own ``srun`` step, and
    SLURM gives a step the job's GPUs (or shards) for itself, so a second step waits for the
    first to end (measured on the test cluster, SLURM 22.05: "step creation temporarily
    disabled ... Requested nodes are busy"; BENCHMARKS.md, "Sharing GPUs under SLURM").
    """
    if cells_per_gpu <= 1:
        return None, []
    key = "resources.cells_per_gpu"
    if grouped:
        return None, [
            f"{key}: {cells_per_gpu} cannot share GPUs between grouped training jobs: SLURM "
            "gives each bundled cell's srun step the job's GPUs for itself, so the cells of "
            "a bundle would run one after another. Drop rule train from --groups (on the "
            "command line or `groups:` in your profile; each cell is then its own job and "
            f"SLURM shares the GPU), or set {key}: 1"
        ]
    if settings["gpus"] != 1:
        return None, [
            f"{key}: {cells_per_gpu} shares one GPU between cells, but slurm.gpus is "
            f"{settings['gpus']}; set slurm.gpus: 1, or {key}: 1"
        ]
    if partition is None:
        return None, [
            f"{key}: {cells_per_gpu} under SLURM needs the GPU shards (gres/shard) of the "
            "training partition, and sinfo did not report the partitions; run where sinfo "
            f"works, or set {key}: 1"
        ]
    shards = partition.shards_per_gpu
    if shards == 0:
        return None, [
            f"{key}: {cells_per_gpu} under SLURM shares GPUs through SLURM's GPU sharding "
            f"(gres/shard), and partition {partition.name!r} has no shards (sinfo %G); ask "
            "the cluster's administrators for it (https://slurm.schedmd.com/gres.html#Sharding) "
            f"or set {key}: 1"
        ]
    if shards % cells_per_gpu:
        return None, [
            f"{key}: {cells_per_gpu} does not divide the {shards} shards per GPU of partition "
            f"{partition.name!r}; valid values: {', '.join(map(str, sharing_choices(shards)))}"
        ]
    return f"shard:{shards // cells_per_gpu}", []
