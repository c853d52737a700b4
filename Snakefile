"""The avvp workflow: a clip list (or released features) -> results/metrics.json and the report.

Each rule's body is one call into the `avvp` package; this file and workflow/rules/ only decide
what runs, where, with which settings, and what is cached. See README for the three ways into LLP.
"""

from pathlib import Path

from snakemake.utils import min_version, validate

from avvp.workflow.config_schema import check_config, write_config_schema
from avvp.workflow.snakemake_log import hide_empty_shell_commands

min_version("9.0")
hide_empty_shell_commands()  # script rules would print "Shell command: None"


configfile: "config/config.yaml"


# The schema's feature kinds, methods and stage sections come from avvp's registries; a config it
# rejects is refused naming the key (check_config), then validate fills in the defaults.
CONFIG_SCHEMA = write_config_schema(
    Path(workflow.basedir) / "workflow/schemas/config.schema.yaml",
    ".snakemake/avvp/config.schema.json",
)
check_config(config, CONFIG_SCHEMA, workflow.overwrite_configfiles)
validate(config, CONFIG_SCHEMA, set_default=True)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/parse.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/metrics.json",
        report_figures(),
