rule plan:
    output:
        PLAN_FILE,
    log:
        f"{RESULTS}/logs/plan.log",
    localrule: True
    params:
        plan=plan_param,
    run:
        write_plan(params.plan, output[0], log[0])


# The first job: every distinct cell shape was built once while planning (a stamp records
# it, and this job only copies it); under --use-conda the check runs here, before any
# training job.
rule check_build:
    input:
        plan=PLAN_FILE,
    output:
        f"{RESULTS}/plan_builds.txt",
    log:
        f"{RESULTS}/logs/check_build.log",
    localrule: True
    conda:
        ENVIRONMENT
    params:
        results=lambda wildcards, input: str(Path(input.plan).parent),
    shell:
        f"{NORMSTUDY} check-build {{input.plan:q}} {{output:q}} --results {{params.results:q}} "
        "> {log:q} 2>&1"


# Every cell's three outputs are read whole before the tables job starts: damaged ones are
# all reported at once, and since this job fails instead of the tables job, Snakemake
# keeps the tables already built.
rule check_cells:
    input:
        plan=PLAN_FILE,
        outputs=cell_outputs(CELLS) if LIST_CELL_FILES else [],
    output:
        f"{RESULTS}/tables/cells_checked.txt",
    log:
        f"{RESULTS}/logs/check_cells.log",
    localrule: True
    conda:
        ENVIRONMENT
    params:
        # Derived from the plan's path, not spelled f"{RESULTS}/cells": Snakemake's lint
        # flags a parameter that is a hardcoded prefix of the rule's input files.
        cells_dir=lambda wildcards, input: str(Path(input.plan).parent / "cells"),
    shell:
        NORMSTUDY
        + " check-cells {input.plan:q} {params.cells_dir:q} {output:q} > {log:q} 2>&1"


rule tables:
    input:
        plan=PLAN_FILE,
        # The cells come through check_cells, which lists all their files: one edge per
        # cell in the DAG, not two.
        checked=rules.check_cells.output[0],
    output:
        cells=f"{RESULTS}/tables/cells.parquet",
        curves=f"{RESULTS}/tables/curves.parquet",
        probes=f"{RESULTS}/tables/probes.parquet",
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    params:
        cells_dir=f"{RESULTS}/cells",
        out_dir=lambda wildcards, output: str(Path(output.cells).parent),
    shell:
        NORMSTUDY
        + " aggregate {input.plan:q} {params.cells_dir:q} {params.out_dir:q} > {log:q} 2>&1"


rule comparisons:
    input:
        plan=rules.plan.output[0],
        cells=rules.tables.output.cells,
    output:
        comparisons=f"{RESULTS}/tables/comparisons.parquet",
        power_md=f"{RESULTS}/tables/power.md",
        power_csv=f"{RESULTS}/tables/power.csv",
        trends=f"{RESULTS}/tables/trends.parquet",
        tuning=f"{RESULTS}/tables/tuning.parquet",
        summary_md=f"{RESULTS}/tables/comparisons.md",
    log:
        f"{RESULTS}/logs/comparisons.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    shell:
        f"{NORMSTUDY} compare {{input.plan:q}} {{input.cells:q}} {{output.comparisons:q}} "
        f"--power-md {{output.power_md:q}} --power-csv {{output.power_csv:q}} "
        f"--trends {{output.trends:q}} --tuning {{output.tuning:q}} "
        f"--summary-md {{output.summary_md:q}} > {{log:q}} 2>&1"


rule ols:
    output:
        f"{RESULTS}/tables/ols.parquet",
    log:
        f"{RESULTS}/logs/ols.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    params:
        d=" ".join(str(v) for v in config["ols"]["d"]),
        kappa=" ".join(str(v) for v in config["ols"]["kappa"]),
        lr=" ".join(str(v) for v in config["ols"]["lr"]),
        steps=config["ols"]["steps"],
    shell:
        NORMSTUDY + " ols {output:q} --d {params.d} --kappa {params.kappa} "
        "--lr {params.lr} --steps {params.steps} > {log:q} 2>&1"
