rule figure:
    input:
        tables=lambda wildcards: [
            f"{RESULTS}/tables/{table}" for table in figure_tables(wildcards.figure)
        ],
        # The figure's module and the package modules it imports: editing one figure, or
        # a helper only some figures use, redraws only those.
        code=lambda wildcards: figure_code(figure_module(wildcards.figure)),
    output:
        report(
            directory(f"{RESULTS}/figures/{{figure}}"),
            patterns=["{name}.png"],
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    params:
        tables_dir=lambda wildcards, input: str(Path(input.tables[0]).parent),
    shell:
        NORMSTUDY
        + " figure {wildcards.figure} {params.tables_dir:q} {output:q} > {log:q} 2>&1"


rule comparison_table:
    input:
        comparisons=rules.comparisons.output[0],
        trends=rules.comparisons.output.trends,
        tuning=rules.comparisons.output.tuning,
        code=f"{PACKAGE}/figures/comparison_table.py",
    output:
        report(
            f"{RESULTS}/tables/comparisons.html",
            caption="../report/comparisons.rst",
            category="Statistics",
        ),
    log:
        f"{RESULTS}/logs/comparison_table.log",
    conda:
        ENVIRONMENT
    resources:
        **CPU_JOB_RESOURCES,
    shell:
        f"PYTHONPATH={shlex.quote(PYTHONPATH)} {PYTHON} -m normstudy.figures.comparison_table"
        " {input.comparisons:q} {output:q} --trends {input.trends:q}"
        " --tuning {input.tuning:q} > {log:q} 2>&1"


rule figures:
    input:
        [f"{RESULTS}/figures/{name}" for name in FIGURE_NAMES],
        rules.comparison_table.output,
    localrule: True
