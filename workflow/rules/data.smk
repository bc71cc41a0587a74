rule prepare_data:
    output:
        f"{RESULTS}/data/{{data}}.pt",
    params:
        normstudy=NORMSTUDY,
        config=data_config,
        data_dir=config["data_dir"],
        download="--download" if config["download"] else "",
    log:
        f"{RESULTS}/logs/prepare_data/{{data}}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{params.normstudy} prepare-data --json {params.config:q} {output:q} "
        "--data-dir {params.data_dir:q} {params.download} > {log:q} 2>&1"
