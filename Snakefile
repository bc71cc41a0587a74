# normstudy: studies in config.yaml -> training cells -> Parquet tables.
# Parsing imports normstudy.grid only (no torch), so even 10,000-cell grids parse fast.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from normstudy.inputcheck import (
    InputError,
    check_workflow_config,
    describe_schema_error,
    refuse,
)


configfile: "config.yaml"


try:
    # Before the schema: duplicate keys, alias bombs, non-finite numbers (no torch).
    check_workflow_config(workflow.configfiles, config)
except InputError as error:
    refuse(str(error))

try:
    validate(config, "workflow/schemas/config.schema.yaml")
except WorkflowError as error:
    refuse(describe_schema_error(error))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/estimate.smk"


check_data_caches()
check_tables()
check_cells_present()
check_builds_while_planning()
warn_outdated_cells()


onstart:
    # Snakemake's lock is per working directory; this one is per results directory.
    holder = lock_results(RESULTS)
    if holder:
        print(refusal(RESULTS, holder), file=sys.stderr, flush=True)
        raise SystemExit(2)
    # Holding the lock, any training job of this workflow left in SLURM is an orphan.
    if ON_SLURM and (left := leftover_refusal(slurm_queue(Path(RESULTS)), RESULTS)):
        print(left, file=sys.stderr, flush=True)
        raise SystemExit(2)


rule all:
    default_target: True
    input:
        # Every data cache: one that is missing (deleted, or set aside as damaged) is
        # rebuilt even when no cell needs it now.
        data_caches(),
        # Directly, not only through the tables: when a cell output is missing, planning
        # drops this marker, and a missing input of the target brings back its cells.
        rules.check_cells.output,
        rules.tables.output,
        rules.comparisons.output,
        rules.ols.output,
        rules.figures.input,
