"""Rule metrics_table: one HTML table per method, and on LLP the published results beside them."""

import sys

from avvp.evaluation.aggregate import read_json
from avvp.base.atomic import atomic_output
from avvp.reporting.figures import published_results
from avvp.reporting.report import metrics_tables_html

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

published = published_results("all") if snakemake.params.published else []
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write(metrics_tables_html(read_json(snakemake.input[0]), published))
