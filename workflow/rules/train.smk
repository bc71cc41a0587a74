rule train:
    input:
        # The manifest, not the cache: a cell depends on what data it trains on, never on
        # the cache file's timestamp; a damaged cache is rebuilt without re-running cells.
        data=ancient(cell_data_manifest),
        builds=ancient(f"{RESULTS}/plan_builds.txt"),
    output:
        summary=f"{RESULTS}/cells/{{cell}}/summary.json",
        curves=f"{RESULTS}/cells/{{cell}}/curves.parquet",
        probes=f"{RESULTS}/cells/{{cell}}/probes.parquet",
    # No benchmark: directive: under the warm worker it would measure the client, not the
    # process that trains; the cell records its own peak memory and CPU in summary.json.
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    retries: TRAIN_RETRIES
    conda:
        ENVIRONMENT
    threads: TRAIN_THREADS
    resources:
        **GPU_JOB_RESOURCES,
        **TRAIN_GPU_RESOURCES,
        **BUNDLE_RESOURCES,
        mem_mb=cell_resource("mem_mb"),
        runtime=cell_runtime,
    params:
        config=cell_config,
        outdir=f"{RESULTS}/cells/{{cell}}",
        checkpoint=f"{RESULTS}/checkpoints/{{cell}}.pt",
        cache=cell_data_cache,
        data_dir=config["data_dir"],
        download="--download" if config["download"] else "",
    shell:
        # Values fixed at parse time are written into the command here rather than as
        # placeholders: a dry run formats every job's command three times, at a cost per
        # placeholder (BENCHMARKS.md, "Workflow scale"). The params stay for rerun-triggers.
        TRAIN_COMMAND + " train --json {params.config:q} {params.outdir:q} "
        f"--data-cache {{params.cache:q}} {TRAIN_DATA_OPTIONS} "
        "--checkpoint {params.checkpoint:q} "
        "--finished-copy {params.checkpoint:q}.finished --stop-with-snakemake "
        f"--threads {{threads}} --gpu-slots {LOCAL_GPUS}{SHARING} > {{log:q}} 2>&1"


# The plan is an input only so that Snakemake looks at the cells at all when the plan has
# changed: it skips every job behind a re-run job's ancient() output (train's plan_builds
# edge) unless another path reaches it, and would then drop a new cell (design.md in
# docs, "Snakemake behaviour the workflow works around"; no slash here: Snakemake's lint
# would read train's shell command above as a path composed with '+').
for _study in PLAN.studies:

    rule:
        name:
            f"study_{_study}"
        input:
            plan=PLAN_FILE,
            # All three files: Snakemake checks only the outputs a job is asked for.
            cells=cell_outputs(PLAN.study_cell_ids(_study)) if LIST_CELL_FILES else [],
        localrule: True
