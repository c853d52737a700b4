"""Rule metrics_table: one HTML table per method, and on LLP the published results beside them."""

import sys

from avvp.aggregate import read_json
from avvp.atomic import atomic_output
from avvp.figures import published_results
from avvp.report import metrics_tables_html

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

published = published_results("all") if snakemake.params.published else []
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write(metrics_tables_html(read_json(snakemake.input[0]), published))
