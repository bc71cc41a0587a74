# `snakemake estimate`: the hours every study of this scale takes on the device the job
# runs on, from measured step times (normstudy.estimate). Not part of `all`; on a cluster,
# `snakemake --profile slurm estimate --config scale=paper` measures on a GPU node, and
# its cells.csv then sets the time requests of the training jobs (normstudy.cluster).
rule estimate:
    output:
        studies=f"{RESULTS}/estimate/{PLAN.scale}/studies.csv",
        groups=f"{RESULTS}/estimate/{PLAN.scale}/groups.csv",
        cells=f"{RESULTS}/estimate/{PLAN.scale}/cells.csv",
        summary=f"{RESULTS}/estimate/{PLAN.scale}/studies.txt",
    log:
        f"{RESULTS}/logs/estimate/{PLAN.scale}.log",
    conda:
        ENVIRONMENT
    threads: TRAIN_THREADS
    resources:
        **GPU_JOB_RESOURCES,
        gpu=TRAIN_GPUS,
        mem_mb=8000,
        runtime=capped_runtime(240),
    params:
        config=json.dumps(config, sort_keys=True),
        out_dir=lambda wildcards, output: str(Path(output.studies).parent),
    shell:
        NORMSTUDY + " estimate --json {params.config:q} {params.out_dir:q} "
        "--threads {threads} > {log:q} 2>&1"
