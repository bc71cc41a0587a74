# The cache (tensors) and its manifest (size, time, SHA-256 and data digest); training jobs
# depend on the manifest only, as an ancient input (normstudy.datamanifest).
rule prepare_data:
    output:
        cache=f"{RESULTS}/data/{{data}}.pt",
        manifest=f"{RESULTS}/data/{{data}}.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{data}}.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
        mem_mb=4000,
        runtime=capped_runtime(30, "cpu_cap"),
    params:
        config=data_config,
        data_dir=config["data_dir"],
        download="--download" if config["download"] else "",
    shell:
        NORMSTUDY + " prepare-data --json {params.config:q} {output.cache:q} "
        "--data-dir {params.data_dir:q} {params.download} > {log:q} 2>&1"
