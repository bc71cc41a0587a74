"""Test-only fault injection for training jobs, active only with NORMSTUDY_TEST_CRASH_FILE.

The SLURM tests put this directory on PYTHONPATH (it reaches the jobs through sbatch's
``--export=ALL``). While the file named by ``NORMSTUDY_TEST_CRASH_FILE`` exists, training
the cell it names raises ``RuntimeError("injected crash ...")`` before its first step.
The file holds ``{"cell": "<cell id>"}``, or ``{"after_finished": n}``: then the first
cell to start once ``n`` cells of the file's directory have finished (have a
``results/cells/<cell>/summary.json``) becomes the crashing cell, and the file is rewritten
to name it. That makes the crash land after some cells have finished, whatever order
Snakemake runs the cells in. Deleting the file is the "fix" that lets a re-run succeed.
``normstudy`` itself holds no test hook.
"""

import fcntl
import importlib.abc
import importlib.util
import json
import os
import sys
from pathlib import Path

CRASH_FILE = os.environ.get("NORMSTUDY_TEST_CRASH_FILE")


def crashing_cell(path: Path, cell_id: str) -> str | None:
    """The cell that must crash, choosing ``cell_id`` if the file's condition holds now.

    Under a lock: cells that start at the same moment in parallel jobs must not both
    become the crashing cell."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = json.loads(path.read_text())
        if "cell" in wanted:
            return wanted["cell"]
        finished = list((path.parent / "results" / "cells").glob("*/summary.json"))
        if len(finished) >= wanted["after_finished"]:
            path.write_text(json.dumps({"cell": cell_id}))
            return cell_id
        return None


def crashing_run_epochs(original):
    def run_epochs(cell, checkpoint, *args, **kwargs):
        path = Path(CRASH_FILE)
        cell_id = Path(checkpoint).stem
        if path.exists() and crashing_cell(path, cell_id) == cell_id:
            raise RuntimeError(f"injected crash for cell {cell_id}")
        return original(cell, checkpoint, *args, **kwargs)

    return run_epochs


class PatchTrainModule(importlib.abc.MetaPathFinder):
    """Wrap ``run_epochs`` as ``normstudy.train.cell`` (which calls it) imports it."""

    def find_spec(self, name, path, target=None):
        if name != "normstudy.train.cell":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.run_epochs = crashing_run_epochs(module.run_epochs)

        spec.loader.exec_module = exec_module
        return spec


if CRASH_FILE:
    sys.meta_path.insert(0, PatchTrainModule())
