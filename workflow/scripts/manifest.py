"""Rule manifest: the shards' clip records gathered into one availability table."""

import sys

from avvp.clips.records import gather_records

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

print(gather_records(snakemake.input, snakemake.output[0]))
