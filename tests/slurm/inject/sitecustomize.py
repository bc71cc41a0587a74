"""Test-only fault injection for training jobs, active only with NORMSTUDY_TEST_CRASH_FILE.

The SLURM tests put this directory on PYTHONPATH (it reaches the jobs through sbatch's
``--export=ALL``). While the file named by ``NORMSTUDY_TEST_CRASH_FILE`` exists and holds
a JSON mapping whose items are all in a cell's resolved config, training that cell raises
``RuntimeError("injected crash ...")`` before its first step. Deleting the file is the
"fix" that lets a re-run succeed. ``normstudy`` itself holds no test hook.
"""

import importlib.abc
import importlib.util
import json
import os
import sys
from pathlib import Path

CRASH_FILE = os.environ.get("NORMSTUDY_TEST_CRASH_FILE")


def crashing_run_epochs(original):
    def run_epochs(cell, *args, **kwargs):
        path = Path(CRASH_FILE)
        if path.exists():
            wanted = json.loads(path.read_text())
            if all(cell.config.get(key) == value for key, value in wanted.items()):
                raise RuntimeError(f"injected crash for cells with {wanted}")
        return original(cell, *args, **kwargs)

    return run_epochs


class PatchTrainModule(importlib.abc.MetaPathFinder):
    """Wrap ``normstudy.train.run_epochs`` when that module is first imported."""

    def find_spec(self, name, path, target=None):
        if name != "normstudy.train":
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
