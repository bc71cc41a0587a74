rule plan:
    output:
        f"{RESULTS}/plan.json",
    log:
        f"{RESULTS}/logs/plan.log",
    localrule: True
    params:
        plan=plan_param,
    run:
        write_plan(params.plan, output[0], log[0])


rule tables:
    input:
        plan=f"{RESULTS}/plan.json",
        summaries=summaries(CELLS),
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
        cells_dir=lambda wildcards, input: str(Path(input.summaries[0]).parent.parent),
        out_dir=lambda wildcards, output: str(Path(output.cells).parent),
    shell:
        NORMSTUDY
        + " aggregate {input.plan:q} {params.cells_dir:q} {params.out_dir:q} > {log:q} 2>&1"


rule comparisons:
    input:
        plan=rules.plan.output[0],
        cells=rules.tables.output.cells,
    output:
        f"{RESULTS}/tables/comparisons.parquet",
    log:
        f"{RESULTS}/logs/comparisons.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    shell:
        f"{NORMSTUDY} compare {{input.plan:q}} {{input.cells:q}} {{output:q}} > {{log:q}} 2>&1"


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
