"""Which ancestor is the snakemake a training cell watches (normstudy.parentwatch)."""

from __future__ import annotations

import os
import subprocess
import sys

from normstudy.parentwatch import is_snakemake, runs_snakemake


def test_every_way_snakemake_is_started_is_recognised():
    assert runs_snakemake(["snakemake", "--cores", "2"])
    assert runs_snakemake(["/venv/bin/python3", "/venv/bin/snakemake", "--profile", "slurm"])
    # How the SLURM executor starts each job's and job step's Snakemake.
    assert runs_snakemake(["/venv/bin/python3", "-m", "snakemake", "--target-jobs", "train:c"])
    assert not runs_snakemake(["/venv/bin/python3", "-m", "normstudy.cli", "train"])
    assert not runs_snakemake(["bash", "-c", "python -m snakemake"])
    assert not runs_snakemake(["python3", "-c", "print()", "-m", "snakemake"])
    assert not runs_snakemake([])


def test_a_running_process_is_read_from_proc():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not is_snakemake(process.pid)
    finally:
        process.kill()
        process.wait()
    assert not is_snakemake(os.getpid() + 10_000_000)  # no such process


def test_the_process_that_ended_is_named():
    """A killed job wrapper (bash) between the cell and snakemake is named as such, not as
    snakemake; a killed snakemake as snakemake."""
    from normstudy.parentwatch import ended_text

    me, parent = os.getpid(), os.getppid()
    gone = os.getpid() + 10_000_000
    # This process lives, its recorded parent differs: the recorded parent ended.
    assert ended_text([(me, gone)], me, gone) == f"its snakemake (pid {gone}) ended"
    chain = [(me, gone), (gone, 7)]
    assert ended_text(chain, me, gone + 1) == (
        f"process {gone} between it and its snakemake (pid {gone + 1}) ended"
    )
    assert ended_text([(gone, parent)], gone, 99) == (
        f"process {gone} between it and its snakemake (pid 99) ended"
    )
