import functools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from normstudy.cluster import (
    BUNDLE_SLOT,
    ClusterConfigError,
    bundle_outline,
    bundle_problem,
    bundle_size_of,
    bundled_minutes,
    cells_to_bundle,
    cell_minutes,
    chain_retries,
    cpu_job_cap,
    cpu_partition,
    effective_cap,
    gpu_sharing_request,
    measured_minutes,
    preflight,
    query_partitions,
    resolve_partition,
    sacct_works,
    slurm_settings,
    status_problem,
    train_request,
)
from normstudy.buildplan import builds_digest, stamp_path
from normstudy.config import canonical_json
from normstudy.datamanifest import damaged_caches, set_aside
from normstudy.jobs import leftover_refusal, slurm_queue
from normstudy.runlock import lock_results, refusal
from normstudy.tablecheck import damaged_tables
from normstudy.figures.catalog import FIGURE_NAMES, figure_module, figure_tables
from normstudy.figures.dependencies import figure_code
from normstudy.grid import (
    DATA_KEYS,
    MAX_CELLS,
    cell_counts,
    only_studies,
    scale_problem,
    StudyError,
    data_key,
    job_resources,
    plan_document,
    plan_studies,
)
from normstudy.invocation import current_invocation
from normstudy.warm.jobserver import serve_bundle
from normstudy.orphans import outdated_cells, outdated_warning

RESULTS = config.get("results", "results")
LOCAL_GPUS = int(config["resources"].get("local_gpus", 0))
CELLS_PER_GPU = int(config["resources"].get("cells_per_gpu", 1))
# Only when sharing: the command of every existing cell stays as it was.
SHARING = f" --cells-per-gpu {CELLS_PER_GPU}" if CELLS_PER_GPU > 1 else ""
INVOCATION = current_invocation(sys.argv, workflow.is_main_process)
ON_SLURM = INVOCATION.slurm
# Bundles of training cells (train in --groups) run their cells one after another: one slot
# per bundle makes Snakemake size the bundle's SLURM job that way (normstudy.cluster).
BUNDLED = ON_SLURM and "train" in INVOCATION.grouped_rules
BUNDLE_SIZE = INVOCATION.bundle_size("train")
BUNDLE_RESOURCES = {BUNDLE_SLOT: 1} if BUNDLED else {}
if ON_SLURM and workflow.is_main_process and INVOCATION.unknown_component_groups():
    print(
        "normstudy: --group-components names no group of --groups: "
        f"{', '.join(INVOCATION.unknown_component_groups())} (groups: "
        f"{', '.join(sorted(set(INVOCATION.groups.values()))) or 'none'}); "
        "those bundles hold one job each",
        file=sys.stderr,
    )
if BUNDLED:
    # What the resource_scopes: keyword and --resources do, for this one resource.
    workflow.resourcescope(**{BUNDLE_SLOT: "local"})
    workflow.register_resource(BUNDLE_SLOT, 1)
SLURM = slurm_settings(config)
TRAIN_THREADS = int(SLURM["threads"] if ON_SLURM else config["resources"]["threads"])
TRAIN_GPUS = int(SLURM["gpus"] if ON_SLURM else config["resources"]["gpu"])
PACKAGE = str(Path(workflow.basedir) / "src" / "normstudy")
ENVIRONMENT = "../../environment.yml"
# Snakemake has no public way to ask whether --use-conda / --sdm conda is on; its
# internal settings answer, and a Snakemake without them stops here with that reason
# (every dry run of the test suite parses this line).
if not hasattr(workflow, "deployment_settings"):
    raise WorkflowError(
        "normstudy cannot tell whether --use-conda is set: this Snakemake has no "
        "workflow.deployment_settings (tested with Snakemake 9)"
    )
USES_CONDA = any(
    method.name == "CONDA" for method in workflow.deployment_settings.deployment_method
)
PYTHON = "python" if USES_CONDA else shlex.quote(sys.executable)
PYTHONPATH = os.pathsep.join(
    p for p in (str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")) if p
)
NORMSTUDY = f"PYTHONPATH={shlex.quote(PYTHONPATH)} {PYTHON} -m normstudy.cli"
# The train rule's data_dir and download params as its shell command spelled them with
# placeholders (Snakemake's `:q` leaves an empty value unquoted).
_DATA_DIR = str(config["data_dir"])
TRAIN_DATA_OPTIONS = f"--data-dir {shlex.quote(_DATA_DIR) if _DATA_DIR else ''} " + (
    "--download" if config["download"] else ""
)
# Training cells: forked from a warm server unless config says no (docs in normstudy.warm).
# Under the SLURM executor every cell, bundled or not, runs in its own srun step, where a
# server a cell started would serve that cell only (BENCHMARKS.md, "A warm worker inside
# SLURM bundles"): there only bundles (train in --groups) use one, started by the bundle's
# batch step, and only with warm_worker: true (normstudy.warm.jobserver).
WARM = config.get("warm_worker", "local")
WARM_BUNDLES = WARM is True and BUNDLED and not USES_CONDA
TRAIN_COMMAND = (
    f"PYTHONPATH={shlex.quote(PYTHONPATH)} {PYTHON} -m normstudy.warm"
    if (WARM is not False and not ON_SLURM) or WARM_BUNDLES
    else NORMSTUDY
)
if WARM is True and ON_SLURM and not WARM_BUNDLES and workflow.is_main_process:
    print(
        "normstudy: warm_worker: true under the SLURM executor serves bundles of cells "
        "only (--groups train=... and no --use-conda; each unbundled cell is a SLURM job "
        "of its own, see BENCHMARKS.md): these cells start fresh interpreters",
        file=sys.stderr,
    )
if WARM_BUNDLES and (
    served := serve_bundle(sys.argv, os.environ, TRAIN_THREADS, PYTHONPATH)
):
    print(served, file=sys.stderr)

try:
    ONLY = only_studies(config.get("only_studies"))
    # Counted from the axis lengths before anything is expanded: refused within seconds.
    problem = scale_problem(
        cell_counts(config, ONLY), int(config.get("max_cells", MAX_CELLS))
    )
    if problem:
        refuse(problem)
    PLAN = plan_studies(config, only=ONLY)
except StudyError as error:
    refuse(str(error))

CELLS = PLAN.cells


def cell_outputs(cell_ids):
    return [
        f"{RESULTS}/cells/{cell}/{name}"
        for cell in cell_ids
        for name in ("summary.json", "curves.parquet", "probes.parquet")
    ]


def slurm_plan():
    """Partitions, time cap and chained-job requests of every training cell under SLURM;
    refuses (before anything is submitted) a plan the cluster would reject. Jobs running
    on the cluster skip it: they only run what was planned here."""
    if not workflow.is_main_process:
        return {"cpu_partition": None, "minutes": None}
    partitions = query_partitions()
    profile_partition = INVOCATION.default_resources.get("slurm_partition") or None
    train_partition = resolve_partition(
        SLURM["gpu_partition"] or profile_partition,
        partitions,
        "training jobs",
        "slurm.gpu_partition",
    )
    cap = effective_cap(SLURM, train_partition)
    gres, problems = gpu_sharing_request(CELLS_PER_GPU, SLURM, train_partition, BUNDLED)
    sharing = CELLS_PER_GPU if gres else 1
    measured = measured_minutes(Path(RESULTS) / "estimate" / PLAN.scale / "cells.csv")
    minutes = {
        cell: cell_minutes(cell, cfg, SLURM, measured, sharing)
        for cell, cfg in CELLS.items()
    }
    requests = {cell: train_request(m, SLURM, cap) for cell, m in minutes.items()}
    study_of = {c.id: name for name, study in PLAN.studies.items() for c in study.cells}
    problems += preflight(requests, study_of, SLURM, train_partition, partitions)
    to_run = requests
    if BUNDLED:
        studies = INVOCATION.target_studies()
        # Any other target may need every cell; an unknown study is Snakemake's to refuse.
        known = [s for s in studies or () if s in PLAN.studies]
        targeted = studies and {c for s in known for c in PLAN.study_cell_ids(s)}
        to_run = cells_to_bundle(
            requests,
            targeted,
            lambda cell: all(Path(f).exists() for f in cell_outputs([cell])),
        )
        group = INVOCATION.groups.get("train")
        problems += filter(
            None, [bundle_problem(to_run, study_of, cap, BUNDLE_SIZE, group, SLURM)]
        )
    if partitions is not None:
        problems += filter(
            None, [status_problem(INVOCATION.status_command, sacct_works())]
        )
    if problems:
        raise ClusterConfigError("\n".join(f"- {p}" for p in problems))
    if BUNDLED:
        outline = bundle_outline(to_run, BUNDLE_SIZE, INVOCATION.groups.get("train"))
        print(f"normstudy: {outline}", file=sys.stderr)
    cpu_name = cpu_partition(SLURM, partitions, profile_partition)
    return {
        "cpu_partition": cpu_name,
        "cap": cap,
        # The CPU jobs' own limit: the training partition's would cut data preparation short.
        "cpu_cap": cpu_job_cap(SLURM, (partitions or {}).get(cpu_name)),
        "bundle_size": bundle_size_of(BUNDLE_SIZE, len(to_run)) if BUNDLED else 1,
        "minutes": minutes,
        "retries": chain_retries(requests, SLURM),
        "gres": gres,
    }


if ON_SLURM:
    try:
        CLUSTER = slurm_plan()
    except ClusterConfigError as error:
        refuse(str(error), heading="not submitted to SLURM")
else:
    CLUSTER = None


def slurm_resources(partition):
    """Resources that only the SLURM executor reads (none for local runs)."""
    return {"slurm_partition": partition} if CLUSTER is not None and partition else {}


CPU_JOB_RESOURCES = slurm_resources(CLUSTER and CLUSTER["cpu_partition"])
# Without slurm.gpu_partition, the partition of the user's profile.
GPU_JOB_RESOURCES = slurm_resources(SLURM["gpu_partition"])
if CLUSTER is not None:
    # SLURM warns the job before its time limit; the cell checkpoints and exits, and the
    # rule's retries resubmit it to resume (a chain of jobs). Appended to what the user's
    # profile gives every job (e.g. a QOS), which a rule's own slurm_extra would replace.
    GPU_JOB_RESOURCES["slurm_extra"] = " ".join(
        part
        for part in (
            INVOCATION.default_resources.get("slurm_extra"),
            f"--signal=TERM@{int(SLURM['warn_seconds'])}",
        )
        if part
    )
if ON_SLURM:
    # Snakemake lowers a rule's threads to --cores in the process that submits, and the
    # SLURM plugin asks for CPUs from those threads, while the job's own Snakemake runs the
    # rule's threads again: asked by name, a job gets the CPUs its cell uses whatever
    # --cores says (the plugin's srun step reads the same resource).
    GPU_JOB_RESOURCES["cpus_per_task"] = TRAIN_THREADS
TRAIN_RETRIES = CLUSTER.get("retries", 0) if CLUSTER is not None else 0
# What a training job asks for to get its GPU. Cells sharing GPUs under SLURM ask for GPU
# shards (normstudy.cluster.gpu_sharing_request) and no `gpu`; in the job process, which
# does not query sinfo, they declare neither, since the executor's srun step would ask for
# a whole GPU of its own for any `gpu` (the step gets the job's shard without asking).
if not (ON_SLURM and CELLS_PER_GPU > 1):
    TRAIN_GPU_RESOURCES = {"gpu": TRAIN_GPUS}
elif CLUSTER is not None and CLUSTER.get("gres"):
    TRAIN_GPU_RESOURCES = {"gres": CLUSTER["gres"]}
else:
    TRAIN_GPU_RESOURCES = {}


wildcard_constraints:
    figure="|".join(FIGURE_NAMES),
    cell=r"[A-Za-z0-9_.+-]+",
    data=r"[A-Za-z0-9_.+-]+",


@functools.cache
def cell_json(cell):
    return canonical_json(CELLS[cell])


@functools.cache
def cell_resources(cell):
    return job_resources(CELLS[cell], config["resources"])


def cell_config(wildcards):
    return cell_json(wildcards.cell)


def data_config(wildcards):
    cell = data_settings()[wildcards.data]
    return canonical_json({key: cell[key] for key in DATA_KEYS})


@functools.cache
def cell_data_key(cell):
    return data_key(CELLS[cell])


@functools.cache
def data_settings():
    """Data cache name -> the config of one cell that reads it.

    Built on first use: a SLURM job that trains one cell never needs it.
    """
    return {cell_data_key(cell): settings for cell, settings in CELLS.items()}


@functools.cache
def plan_json():
    return json.dumps(plan_document(PLAN), sort_keys=True)


def plan_param(wildcards):
    """The plan as JSON, serialized only when the plan job is considered (not per job start)."""
    return plan_json()


def cell_data_cache(wildcards):
    return f"{RESULTS}/data/{cell_data_key(wildcards.cell)}.pt"


def cell_data_manifest(wildcards):
    return f"{RESULTS}/data/{cell_data_key(wildcards.cell)}.json"


def data_caches():
    return [f"{RESULTS}/data/{key}.pt" for key in data_settings()]


def check_cells_present():
    """Planning: if a cell output behind the checked tables is missing (a cell directory was
    deleted, or a failed job's outputs were removed), drop the check_cells marker, so that
    Snakemake restores or retrains those cells and rebuilds the tables instead of calling
    stale tables up to date ("Nothing to be done")."""
    marker = Path(f"{RESULTS}/tables/cells_checked.txt")
    if not workflow.is_main_process or not marker.exists():
        return
    # The cells the tables were built from (new cells of an edited config are not missing).
    checked = [line for line in marker.read_text().splitlines() if line in CELLS]
    missing = [path for path in cell_outputs(checked) if not os.path.exists(path)]
    if missing:
        marker.unlink(missing_ok=True)
        print(
            f"normstudy: {len(missing)} cell output(s) behind the tables are missing (e.g. "
            f"{missing[0]}): those cells are restored or trained again and the tables rebuilt",
            file=sys.stderr,
        )


def check_builds_while_planning():
    """Planning (a dry run too): build every distinct cell shape once, in a separate
    process (the planner imports no torch), and refuse the run before any job starts if
    one cannot be built. A stamp in the results directory records a checked plan, so this
    runs once per change of shapes or code. Under --use-conda the interpreter running
    Snakemake may lack torch: the first job (check_build) does the same check there."""
    if not workflow.is_main_process or USES_CONDA:
        return
    if stamp_path(RESULTS, builds_digest(plan_document(PLAN))).exists():
        return
    print(
        "normstudy: checking that every cell shape builds", file=sys.stderr, flush=True
    )
    command = [sys.executable, "-m", "normstudy.cli", "check-build", "-"]
    result = subprocess.run(
        [*command, "--results", RESULTS],
        input=plan_json(),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    if result.returncode == 2:
        refuse(result.stderr.strip().removeprefix("normstudy: error: "))
    if result.returncode != 0:
        raise WorkflowError(f"normstudy check-build failed:\n{result.stderr}")


def warn_outdated_cells():
    """Planning: say that cells on disk were made by versions no longer current (a fix
    bumped a part's version, so their cells are planned again under new ids); they stay.
    """
    if not workflow.is_main_process:
        return
    outdated = outdated_cells(Path(RESULTS) / "cells", skip=CELLS)
    if outdated:
        print(outdated_warning(outdated, RESULTS), file=sys.stderr)


def check_data_caches():
    """Planning (a dry run too): set aside every data cache that differs from its manifest
    (overwritten, truncated, replaced), so that prepare_data rebuilds it; finished cells
    stay, since they depend on the manifest only."""
    if not workflow.is_main_process:
        return
    for path, problem in damaged_caches(data_caches()).items():
        moved = set_aside(path)
        print(
            f"normstudy: data cache {path} is damaged ({problem}): moved to {moved}; "
            "prepare_data rebuilds it, and no finished cell is re-run",
            file=sys.stderr,
        )


def check_tables():
    """Planning (a dry run too): set aside every table that is no longer a whole Parquet
    file, so that the job that builds it runs again before a figure or statistic reads it
    (normstudy.tablecheck); what was built from it stays until it is rebuilt."""
    if not workflow.is_main_process:
        return
    for path, problem in damaged_tables(Path(RESULTS) / "tables").items():
        moved = set_aside(path)
        print(
            f"normstudy: table {path} is damaged ({problem}): moved to {moved}; "
            "the job that builds it runs again, and the figures and statistics after it",
            file=sys.stderr,
        )


def cell_resource(name):
    def resource(wildcards, threads=None):
        return cell_resources(wildcards.cell)[name]

    return resource


def cell_runtime(wildcards, attempt):
    """Minutes for a training job: the cell's estimate times the attempt, so that a job
    retried after hitting its time limit gets more time; under SLURM from the GPU
    calibration and never above the partition's limit (normstudy.cluster)."""
    if CLUSTER is not None and CLUSTER["minutes"] is not None:
        minutes = CLUSTER["minutes"][wildcards.cell]
        runtime = train_request(minutes, SLURM, CLUSTER["cap"], attempt).runtime
        return bundled_minutes(runtime, CLUSTER["cap"], CLUSTER["bundle_size"])
    return cell_resources(wildcards.cell)["runtime"] * attempt


def capped_runtime(minutes, cap="cap"):
    """A fixed time request, within the limit under SLURM of the training partition
    (``cap``) or of the CPU jobs' partition (``cpu_cap``)."""
    if CLUSTER is not None and CLUSTER.get(cap) is not None:
        return int(min(minutes, CLUSTER[cap]))
    return minutes


# The rules that list every cell's files (check_cells, study_<name>) run only in the process
# the user started; Snakemake's jobs (SLURM jobs, spawned run: jobs) parse the workflow
# again but never run them, so there these lists stay empty: a shorter parse for every job.
LIST_CELL_FILES = workflow.is_main_process


PLAN_FILE = f"{RESULTS}/plan.json"


def write_plan(plan_json, path, log):
    Path(path).write_text(plan_json)
    Path(log).write_text(f"{len(PLAN.cells)} cells in {len(PLAN.studies)} studies\n")
