"""Rule per_class: one method's audio and visual F per class, the mean over its seeds."""

import sys

from avvp.aggregate import read_json
from avvp.atomic import atomic_output
from avvp.figures import per_class_bars

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

run = read_json(snakemake.input[0])["runs"][snakemake.wildcards.method]
with atomic_output(snakemake.output[0], "wb") as fh:
    per_class_bars(run["mean"], fh)
