# normstudy: studies in config.yaml -> training cells -> Parquet tables.
# Parsing imports normstudy.grid only (no torch), so even 10,000-cell grids parse fast.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/estimate.smk"


rule all:
    default_target: True
    input:
        rules.tables.output,
        rules.comparisons.output,
        rules.ols.output,
        rules.figures.input,
