"""Rule metrics_table: the leaderboard, then one HTML table per method; on LLP the published
results beside them."""

import sys

from avvp.evaluation.aggregate import read_json
from avvp.base.atomic import atomic_output
from avvp.reporting.leaderboard import published_by_method
from avvp.reporting.report import metrics_tables_html

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

published = published_by_method() if snakemake.params.published else None
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write(metrics_tables_html(read_json(snakemake.input[0]), published))
