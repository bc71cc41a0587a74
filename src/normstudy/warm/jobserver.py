"""The warm server of a SLURM bundle: started by the bundle's batch step, used by its cells.

The SLURM executor runs a bundle of cells (``--groups train=...``) as one SLURM job whose
batch step runs snakemake, which starts each cell in an ``srun`` step of its own
(snakemake-executor-plugin-slurm-jobstep). A server that a cell's client started would live
in that step and serve that cell alone, which was measured to cost more than it saves
(BENCHMARKS.md, "A warm worker inside SLURM bundles"). So the batch step's snakemake starts
the job's server while it parses the workflow, under the environment its cells will have
(the variables Snakemake's ``shell`` sets to the job's threads and the workflow's
PYTHONPATH); the server ends with that snakemake; a cell's client finds it by the job's key
(:func:`normstudy.warm.key.job_server_path`) and never starts one inside a SLURM job.

Its cells are forked in the batch step, so SLURM accounts their CPU and memory to that step
rather than to the cell's own ``srun`` step (the job's limits still hold them); a cell
applies its step's environment (CUDA_VISIBLE_DEVICES among it) before CUDA starts.
Standard library only, like the client: the workflow imports it while parsing.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

from normstudy.warm.client import NoServer, start_server
from normstudy.warm.key import NO_SERVER_ENV, in_slurm_job, job_server_path, source_digest

# What snakemake.shell sets, for every job, to the job's thread count.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def target_jobs(argv: Sequence[str]) -> list[str]:
    """The ``--target-jobs`` of a snakemake command line (``rule:wildcard=value`` each)."""
    if "--target-jobs" not in argv:
        return []
    following = argv[list(argv).index("--target-jobs") + 1 :]
    return list(itertools.takewhile(lambda argument: not argument.startswith("-"), following))


def bundled_cells(argv: Sequence[str], environ: Mapping[str, str], rule: str = "train") -> int:
    """How many jobs of ``rule`` this snakemake runs as the batch step of a SLURM bundle:
    0 outside a SLURM job, inside an ``srun`` step, or for a job that is not a group."""
    if not in_slurm_job(environ) or "SLURM_STEP_ID" in environ:
        return 0
    if "--local-groupid" not in argv:
        return 0
    return sum(job.startswith(f"{rule}:") for job in target_jobs(argv))


def cell_environment(environ: Mapping[str, str], threads: int, pythonpath: str) -> dict[str, str]:
    """The environment a bundled cell's client will have, as far as imports can tell."""
    env = dict(environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = pythonpath
    return env


def start_job_server(
    environ: Mapping[str, str], threads: int, pythonpath: str, executable: str = sys.executable
) -> Path:
    """Start this SLURM job's server (ending with this process) and wait until it serves."""
    env = cell_environment(environ, threads, pythonpath)
    digest = source_digest()
    path = job_server_path(env, digest, executable)
    start_server(path, digest, env=env, parent=os.getpid(), executable=executable).close()
    return path


def serve_bundle(
    argv: Sequence[str], environ: MutableMapping[str, str], threads: int, pythonpath: str
) -> str | None:
    """In a bundle's batch step: start the job's server, or record in ``environ`` (which
    the bundle's cells inherit) why there is none. Returns a line for the SLURM log, None
    outside a batch step."""
    cells = bundled_cells(argv, environ)
    if cells == 0:
        return None
    if cells == 1:
        environ[NO_SERVER_ENV] = "a bundle of one cell: its server would cost more than it saves"
        return f"normstudy: no warm server for this bundle ({environ[NO_SERVER_ENV]})"
    try:
        path = start_job_server(environ, threads, pythonpath)
    except (NoServer, OSError) as error:
        environ[NO_SERVER_ENV] = f"its batch step could not start one: {error}"
        return f"normstudy: no warm server for this bundle ({error}): its cells start fresh"
    return f"normstudy: warm server {path.name} serves the {cells} cells of this bundle"
