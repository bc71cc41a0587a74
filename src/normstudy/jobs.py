"""What is training right now, for ``normstudy status``: ``normstudy train`` processes on
this machine and the user's SLURM jobs (``squeue``).

Files alone cannot tell a cell that is training from one whose process was killed: both
have a ``train.log`` and a checkpoint but no summary. A live process or job can.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

SQUEUE_FORMAT = "%i|%T|%j|%k|%Z"
"""Job id, state, name (the Snakemake run's id), comment (the rule and wildcards, set by
snakemake-executor-plugin-slurm) and working directory; ``|`` never occurs in the first four."""
SQUEUE_TIMEOUT = 30.0
RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
CELL_COMMENT = re.compile(r"^rule_train_wildcards_(?P<cell>[A-Za-z0-9_.+-]+)$")
"""The comment of a job that trains one cell; a bundle (Snakemake's group job, ``--groups
train=<group>``) is commented ``rule_<group>_<its rules, sorted, joined by _>``, e.g.
``rule_cells_train``, and does not say which cells it runs."""


@dataclass
class SlurmJob:
    job_id: str
    state: str
    name: str
    comment: str
    workdir: str

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def cell(self) -> str | None:
        """The cell this job trains, if it trains exactly one."""
        match = CELL_COMMENT.match(self.comment)
        return match["cell"] if match else None

    @property
    def trains(self) -> bool:
        """Whether it trains one cell or is a bundle with training in it."""
        if self.cell is not None:
            return True
        if not self.comment.startswith("rule_") or "_wildcards_" in self.comment:
            return False
        return "train" in self.comment.removeprefix("rule_").split("_")[1:]

    def runs_in(self, results: Path) -> bool:
        """Whether the job runs the workflow of ``results`` (started in it or above it)."""
        if not self.workdir or self.workdir == "(null)":
            return True
        workdir = Path(self.workdir).resolve()
        return results == workdir or workdir in results.parents

    def as_dict(self) -> dict:
        return {**asdict(self), "running": self.running, "cell": self.cell}


@dataclass
class SlurmQueue:
    """The user's training jobs of one workflow; ``error`` says why they are unknown."""

    jobs: list[SlurmJob]
    error: str | None = None
    by_cell: dict[str, SlurmJob] = field(init=False)
    """The jobs that train one cell, by cell."""

    def __post_init__(self) -> None:
        self.by_cell = {job.cell: job for job in self.jobs if job.cell is not None}

    @property
    def checked(self) -> bool:
        return self.error is None

    def bundles(self) -> list[SlurmJob]:
        return [job for job in self.jobs if job.cell is None]


def parse_squeue(output: str, results: Path) -> list[SlurmJob]:
    """The training jobs in ``squeue`` output (:data:`SQUEUE_FORMAT`) of the workflow of
    ``results``, recognised by their working directory (Snakemake's, which holds
    ``results``): a cell id alone may be that of the same cell in another workflow."""
    results = results.resolve()
    jobs = []
    for line in output.splitlines():
        fields = line.strip().split("|", 4)
        if len(fields) != 5:
            continue
        job = SlurmJob(*fields)
        if job.trains and job.runs_in(results):
            jobs.append(job)
    return jobs


def slurm_queue(results: Path) -> SlurmQueue:
    """The training jobs of the workflow of ``results`` in ``squeue --me``; never raises."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return SlurmQueue([], "squeue not found: SLURM jobs not checked")
    command = [squeue, "--me", "--noheader", f"--format={SQUEUE_FORMAT}"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=SQUEUE_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as error:
        return SlurmQueue([], f"squeue failed ({error}): SLURM jobs not checked")
    if run.returncode != 0:
        message = (run.stderr.strip().splitlines() or ["no message"])[-1]
        return SlurmQueue(
            [], f"squeue failed (exit status {run.returncode}: {message}): SLURM jobs not checked"
        )
    return SlurmQueue(parse_squeue(run.stdout, results))


def leftover_refusal(queue: SlurmQueue, results: str | os.PathLike[str]) -> str | None:
    """Why a run that has just taken the results lock must not start (None: it may): SLURM
    still holds training jobs of this workflow, which only a run that ended without
    cancelling them (killed, a lost session) can have left, since a live run holds the
    lock. Started beside them, the run would train their cells a second time, two
    processes writing one checkpoint."""
    if not queue.jobs:
        return None
    listed = [
        f"  {job.job_id} {job.state.lower()}: "
        + (f"cell {job.cell}" if job.cell else "a bundle of cells")
        for job in queue.jobs[:20]
    ]
    if len(queue.jobs) > 20:
        listed.append(f"  ... and {len(queue.jobs) - 20} more")
    # An array task's id is <array>_<task>: the array's id cancels all of its tasks.
    ids = " ".join(dict.fromkeys(job.job_id.split("_")[0] for job in queue.jobs))
    return (
        f"normstudy: not started: SLURM still has {len(queue.jobs)} training job(s) of this "
        f"workflow ({results}) from a run that ended without them (killed, a lost session):\n"
        + "\n".join(listed)
        + "\nStarted beside them this run would train their cells a second time. Cancel "
        f"them (their cells write a checkpoint and resume in the next run): scancel {ids}\n"
        "or wait until they end (`normstudy status` lists them); then run the same command "
        "again."
    )


def is_train_command(argv: list[str]) -> bool:
    """``normstudy train``, directly or through the warm worker's client (which waits for
    its cell, forked by the server, and carries the cell's arguments)."""
    launchers = ("normstudy.cli", "normstudy.warm")
    launcher = any(arg in launchers or Path(arg).name == "normstudy" for arg in argv)
    return launcher and "train" in argv


def local_training_cells(cells_dir: Path, proc: Path = Path("/proc")) -> set[str] | None:
    """The cells of ``cells_dir`` a ``normstudy train`` process of this user on this machine
    is training (its OUTDIR argument, resolved in its working directory); None where
    processes cannot be listed (no ``/proc``)."""
    if not (proc / "self" / "cmdline").exists():
        return None
    cells_dir = cells_dir.resolve()
    cells = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if not is_train_command(argv):
                continue
            cwd = os.readlink(entry / "cwd")  # other users' processes: PermissionError
        except OSError:
            continue
        for arg in argv:
            if arg.startswith(("-", "{")) or not arg:  # options and --json's config
                continue
            try:
                path = Path(cwd, arg).resolve()
            except (OSError, ValueError):
                continue
            if path.parent == cells_dir:
                cells.add(path.name)
    return cells
