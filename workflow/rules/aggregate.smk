rule plan:
    output:
        f"{RESULTS}/plan.json",
    params:
        plan=json.dumps(plan_document(PLAN), sort_keys=True),
    localrule: True
    run:
        Path(output[0]).write_text(params.plan)


rule tables:
    input:
        plan=rules.plan.output[0],
        summaries=summaries(CELLS),
    output:
        cells=f"{RESULTS}/tables/cells.parquet",
        curves=f"{RESULTS}/tables/curves.parquet",
        probes=f"{RESULTS}/tables/probes.parquet",
    params:
        normstudy=NORMSTUDY,
        cells_dir=f"{RESULTS}/cells",
        out_dir=f"{RESULTS}/tables",
    log:
        f"{RESULTS}/logs/tables.log",
    shell:
        "{params.normstudy} aggregate {input.plan:q} {params.cells_dir:q} {params.out_dir:q} > {log:q} 2>&1"
