import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from normstudy.config import canonical_json
from normstudy.grid import (
    StudyError,
    data_key,
    job_resources,
    plan_document,
    plan_studies,
)

RESULTS = config.get("results", "results")
NORMSTUDY = f"{shlex.quote(sys.executable)} -m normstudy.cli"

try:
    PLAN = plan_studies(config)
except StudyError as error:
    raise WorkflowError(f"invalid study config:\n{error}") from None

CELLS = PLAN.cells
DATA = {data_key(cell): cell for cell in CELLS.values()}


wildcard_constraints:
    cell=r"[A-Za-z0-9_.+-]+",
    data=r"[A-Za-z0-9_.+-]+",


def cell_config(wildcards):
    return canonical_json(CELLS[wildcards.cell])


def data_config(wildcards):
    return canonical_json(DATA[wildcards.data])


def cell_data_cache(wildcards):
    return f"{RESULTS}/data/{data_key(CELLS[wildcards.cell])}.pt"


def cell_resource(name):
    def resource(wildcards, threads=None):
        return job_resources(CELLS[wildcards.cell], config["resources"])[name]

    return resource


def summaries(cell_ids):
    return [f"{RESULTS}/cells/{cell}/summary.json" for cell in cell_ids]
