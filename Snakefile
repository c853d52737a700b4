"""The avvp workflow: a clip list (or released features) -> results/metrics.json and the report.

Each rule's body is one call into the `avvp` package; this file and workflow/rules/ only decide
what runs, where, with which settings, and what is cached. See README for the three ways into LLP.
"""
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/parse.smk"


rule all:
    input:
        "results/metrics.json",
        report_figures(),
    default_target: True
