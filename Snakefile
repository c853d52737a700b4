"""The avvp workflow: a clip list (or released features) -> results/metrics.json and the report.

Every output goes under one experiment folder: results/ for the demo config, results/<experiment>/
for any other (config `experiment`, by default the --configfile's stem; rules/common.smk `out`), so
configs run one after another keep each other's results.

Each rule's body is one call into the `avvp` package; this file and workflow/rules/ only decide
what runs, where, with which settings, and what is cached. See README for the three ways into LLP.
"""

from pathlib import Path

from snakemake.utils import min_version, validate

from avvp.workflow.config_schema import check_config, write_config_schema
from avvp.workflow.experiment import experiment_report_text
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


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/parse.smk"
include: "workflow/rules/report.smk"


# The front page includes this experiment's summary page by path (rules/common.smk EXPERIMENT).
REPORT_TEXT = experiment_report_text(
    Path(workflow.basedir) / "workflow/report/workflow.rst",
    EXPERIMENT,
    Path(".snakemake/avvp/report", "_".join(Path(EXPERIMENT).parts) + ".rst"),
)


report: REPORT_TEXT


rule all:
    default_target: True
    input:
        out("metrics.json"),
        report_figures(),
