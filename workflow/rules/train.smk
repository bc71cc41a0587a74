rule train:
    input:
        data=cell_data_cache,
    output:
        summary=f"{RESULTS}/cells/{{cell}}/summary.json",
        curves=f"{RESULTS}/cells/{{cell}}/curves.parquet",
        probes=f"{RESULTS}/cells/{{cell}}/probes.parquet",
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{cell}}.tsv"
    retries: TRAIN_RETRIES
    conda:
        ENVIRONMENT
    threads: TRAIN_THREADS
    resources:
        **GPU_JOB_RESOURCES,
        mem_mb=cell_resource("mem_mb"),
        runtime=cell_runtime,
        gpu=TRAIN_GPUS,
    params:
        config=cell_config,
        outdir=f"{RESULTS}/cells/{{cell}}",
        checkpoint=f"{RESULTS}/checkpoints/{{cell}}.pt",
    shell:
        NORMSTUDY + " train --json {params.config:q} {params.outdir:q} "
        "--data-cache {input.data:q} --checkpoint {params.checkpoint:q} "
        "--finished-copy {params.checkpoint:q}.finished "
        f"--threads {{threads}} --gpu-slots {LOCAL_GPUS} > {{log:q}} 2>&1"


for _study in PLAN.studies:

    rule:
        name:
            f"study_{_study}"
        input:
            summaries(PLAN.study_cell_ids(_study)),
        localrule: True
